#!/usr/bin/env python3
"""Echo server for the soak test (examples/soak.rs --peer python), on the `websockets` library.

    soak_peer.py [--host 127.0.0.1] [--port 0] [--cert cert.pem --key key.pem]

Serves ws (or wss with --cert/--key) on a free loopback port, echoes every message back
unchanged (text as text, binary as binary), prints `PORT <n>` on stdout once it listens, and
exits cleanly on SIGTERM or SIGINT, printing a one-line count of what it served on stderr.

permessage-deflate is on (the library's default). max_size is 64 MiB and max_queue 1024 frames,
far above what the soak keeps in flight per socket (64 messages of at most 64 KiB), so the peer
itself never closes a socket for size or applies backpressure that the client does not expect.
Needs websockets >= 13 (the `websockets.asyncio` API).
"""

import argparse
import asyncio
import signal
import ssl
import sys

import websockets
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

STATS = {"connections": 0, "messages": 0, "bytes": 0, "errors": 0, "open": 0}


async def echo(ws):
    STATS["connections"] += 1
    STATS["open"] += 1
    try:
        async for message in ws:
            STATS["messages"] += 1
            STATS["bytes"] += len(message)
            await ws.send(message)
    except ConnectionClosed:
        # The client went away without a clean close: the soak client reports that itself.
        STATS["errors"] += 1
    finally:
        STATS["open"] -= 1


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--cert", help="PEM certificate: serve wss")
    parser.add_argument("--key", help="PEM private key for --cert")
    args = parser.parse_args()

    tls = None
    if args.cert:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(args.cert, args.key)

    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))

    async with serve(
        echo,
        args.host,
        args.port,
        ssl=tls,
        compression="deflate",
        max_size=64 * 1024 * 1024,
        max_queue=1024,
        # Keepalive pings stay on (they interleave control frames with the data), with a
        # timeout generous enough for a loaded 2-core machine.
        ping_interval=20,
        ping_timeout=120,
        # The library's default. Over wss a syncws client's close(1000) completes only when
        # this runs out (docs/soak.md, "Findings"); over ws at once.
        close_timeout=10,
        # Passed to loop.create_server: the soak connects sockets in batches of 100.
        backlog=2048,
    ) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"PORT {port}", flush=True)
        print(
            f"soak_peer: websockets {websockets.__version__} listening on "
            f"{'wss' if tls else 'ws'}://{args.host}:{port}/",
            file=sys.stderr,
            flush=True,
        )
        await stop
    print(
        "soak_peer: stopped; connections={connections} messages={messages} bytes={bytes} "
        "unclean={errors} still_open={open}".format(**STATS),
        file=sys.stderr,
        flush=True,
    )


if __name__ == "__main__":
    asyncio.run(main())
