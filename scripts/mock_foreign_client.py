"""The foreign client of scripts/mock_foreign.sh: Python `websockets` against syncws's
MockServer. Exits non-zero, saying why, if anything the script sends is not as expected."""

import sys

from websockets.exceptions import ConnectionClosedOK, InvalidStatus
from websockets.sync.client import connect


def main(url: str) -> None:
    # Connection 1: the scripted refusal.
    try:
        connect(url, open_timeout=10)
        sys.exit("expected the 401 refusal, the upgrade succeeded")
    except InvalidStatus as e:
        assert e.response.status_code == 401, e.response.status_code
        assert e.response.headers["WWW-Authenticate"] == 'Bearer realm="mock"'

    # Connection 2: the script.
    with connect(url, subprotocols=["chat.v1"], open_timeout=10) as ws:
        assert ws.subprotocol == "chat.v1", ws.subprotocol
        ws.send("hello from python")
        assert ws.recv(timeout=10) == "hi python"
        assert ws.recv(timeout=10) == "in four frames"
        got = ws.recv(timeout=10)
        assert got == bytes([0, 1, 2, 255]), got
        ws.send(bytes(reversed(got)))
        ws.send("x" * 5000)
        try:
            extra = ws.recv(timeout=10)
            sys.exit(f"expected the close, got {extra!r}")
        except ConnectionClosedOK as e:
            assert e.rcvd.code == 1000 and e.rcvd.reason == "bye python", e.rcvd
    print("python client: all checks passed")


if __name__ == "__main__":
    main(sys.argv[1])
