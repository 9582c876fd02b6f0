#!/usr/bin/env python3
"""Writes the hand-made seed inputs of every fuzz target into fuzz/seeds/<target>/.

Each target's input layout (the leading bytes that pick a role, a limit, a chunking) is
documented on its function in fuzz/src/ and in docs/fuzzing.md. Run from anywhere:
    python3 fuzz/make_seeds.py
The output is deterministic, so re-running it leaves the committed seeds unchanged.
"""

import os
import shutil
import struct
import zlib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds")

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # RFC 6455 section 1.3
MASK = bytes([0x37, 0xFA, 0x21, 0x3D])

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def frame(op, payload, fin=True, rsv1=False, mask=None):
    """One frame, RFC 6455 section 5.2; masked when `mask` is given."""
    b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | op
    n = len(payload)
    m = 0x80 if mask else 0
    if n < 126:
        head = bytes([b0, m | n])
    elif n < 65536:
        head = bytes([b0, m | 126]) + struct.pack(">H", n)
    else:
        head = bytes([b0, m | 127]) + struct.pack(">Q", n)
    if mask:
        payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
        head += mask
    return head + payload


def deflate(data, wbits=15, level=6):
    """A permessage-deflate payload: raw deflate, sync flush, tail 00 00 ff ff removed."""
    c = zlib.compressobj(level, zlib.DEFLATED, -wbits)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def write(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# --- decoder: flags, max_message_size / 16 (2 bytes), read-size seed, wire bytes ----------

SERVER, DEFLATE, PEER_NCT = 1, 2, 4


def reads(n):  # bits 3-4: largest read 1 / 7 / 64 / 1024
    return n << 3


def decoder_seeds():
    big = struct.pack(">H", 0xFFFF)  # ~1 MiB
    def seed(name, flags, wire, limit=big, chunk=7):
        write("decoder", name, bytes([flags]) + limit + bytes([chunk]) + wire)
        # parts: the same, with a part size (2 bytes) after the limit; small parts, so that
        # every seed's messages are handed over in several.
        write("parts", name, bytes([flags]) + limit + struct.pack(">H", 5) + bytes([chunk])
              + wire)

    hello = "Hello κόσμε €".encode()
    seed("text_client", reads(3), frame(TEXT, hello))
    seed("text_client_bytewise", reads(0), frame(TEXT, hello))
    seed("text_server_masked", SERVER | reads(2), frame(TEXT, hello, mask=MASK))
    seed("binary_126", reads(2), frame(BINARY, bytes(range(256)) * 2))
    seed("binary_127_partial", SERVER | reads(1),
         bytes([0x82, 0xFF]) + struct.pack(">Q", 300) + MASK + bytes(40))
    euro = "€uro and more".encode()
    frag = (frame(TEXT, euro[:1], fin=False) + frame(PING, b"p")
            + frame(CONT, euro[1:2], fin=False) + frame(PONG, b"x")
            + frame(CONT, euro[2:]))
    seed("fragmented_text", reads(1), frag)
    seed("fragmented_text_masked", SERVER | reads(1),
         frame(TEXT, euro[:1], fin=False, mask=MASK) + frame(PING, b"", mask=MASK)
         + frame(CONT, euro[1:], mask=MASK))
    seed("controls", reads(2),
         frame(PING, b"ping") + frame(PONG, b"") + frame(CLOSE, b"\x03\xe8bye"))
    seed("close_empty", SERVER, frame(CLOSE, b"", mask=MASK))
    seed("close_bad_code", 0, frame(CLOSE, b"\x03\xed"))
    seed("bad_utf8", reads(2), frame(TEXT, b"ok\xff\xfe"))
    seed("oversized", reads(2), frame(BINARY, bytes(64)), limit=struct.pack(">H", 2))
    seed("wrong_mask", reads(2), frame(TEXT, b"masked", mask=MASK))
    seed("reserved_bits", 0, bytes([0xB1, 0x00]))
    # permessage-deflate: RFC 7692 section 7.2.3.1 "Hello", then context takeover.
    z = zlib.compressobj(6, zlib.DEFLATED, -15)
    m1 = z.compress(b"Hello") + z.flush(zlib.Z_SYNC_FLUSH)
    m2 = z.compress(b"Hello") + z.flush(zlib.Z_SYNC_FLUSH)
    seed("deflate_client", DEFLATE | reads(2),
         frame(TEXT, m1[:-4], rsv1=True) + frame(TEXT, m2[:-4], rsv1=True))
    seed("deflate_server_masked", SERVER | DEFLATE | PEER_NCT | reads(1),
         frame(TEXT, deflate(b"Hello"), rsv1=True, mask=MASK)
         + frame(BINARY, deflate(bytes(range(100)) * 3), rsv1=True, mask=MASK))
    body = deflate(("the quick brown fox " * 50).encode())
    seed("deflate_fragmented", DEFLATE | reads(1),
         frame(TEXT, body[:10], fin=False, rsv1=True) + frame(PING, b"between")
         + frame(CONT, body[10:]) + frame(BINARY, b"plain, uncompressed"))
    seed("deflate_bomb", DEFLATE | reads(3), frame(BINARY, deflate(bytes(1 << 20), level=9),
                                                    rsv1=True), limit=struct.pack(">H", 4096))
    seed("deflate_corrupt", DEFLATE | reads(2), frame(BINARY, b"\xff\xff\xff\xff", rsv1=True))


# --- roundtrip: flags, windows, offered window, fragment size - 1 (2), min_compress_size,
# --- level, read seed, then messages (op, length (2), bytes) -------------------------------

def msg(op, body):
    return bytes([op]) + struct.pack(">H", len(body)) + body


def roundtrip_seeds():
    messages = (msg(0, "Hello κόσμε €uro".encode()) + msg(1, bytes(range(200)))
                + msg(2, b"ping") + msg(3, b"") + msg(5, ("fragmented é " * 20).encode())
                + msg(6, bytes(300)) + msg(4, b"\x03\xe8goodbye"))
    write("roundtrip", "server_plain", bytes([0x00, 0xFF, 7, 0, 15, 16, 6, 1]) + messages)
    write("roundtrip", "client_plain", bytes([0x01, 0xFF, 7, 0, 3, 16, 6, 2]) + messages)
    # deflate with client_max_window_bits offered and small windows on both sides.
    write("roundtrip", "server_deflate", bytes([0x12, 0x34, 2, 0, 63, 0, 6, 3]) + messages)
    write("roundtrip", "client_deflate_nct", bytes([0xF3, 0x9A, 1, 0, 100, 8, 9, 0]) + messages)
    write("roundtrip", "deflate_tiny_fragments", bytes([0x13, 0x77, 7, 0, 0, 0, 1, 1]) + messages)
    write("roundtrip", "closes", bytes([0x00, 0xFF, 7, 0, 15, 16, 6, 1])
          + msg(4, b"") + msg(4, b"\x0f\xa0" + "é".encode() * 70) + msg(4, b"\x00\x00"))


# --- handshake_request: the raw request head -----------------------------------------------

def request(extra="", path="/chat", version="1.1"):
    return (f"GET {path} HTTP/{version}\r\nHost: server.example.com\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nOrigin: http://example.com\r\n"
            f"Sec-WebSocket-Version: 13\r\n{extra}\r\n").encode()


def handshake_request_seeds():
    write("handshake_request", "rfc6455", request(
        "Sec-WebSocket-Protocol: chat, superchat\r\n"))
    write("handshake_request", "deflate_offer", request(
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"))
    write("handshake_request", "trailing_frame", request(path="/?x=1") + frame(TEXT, b"hi", mask=MASK))
    write("handshake_request", "lowercase", (
        "GET / HTTP/1.1\r\nhost: a\r\nupgrade: WebSocket\r\nconnection: keep-alive, upgrade\r\n"
        f"sec-websocket-key: {KEY}\r\nsec-websocket-version: 13\r\n\r\n").encode())
    write("handshake_request", "post", request().replace(b"GET", b"POST"))
    write("handshake_request", "http10", request(version="1.0"))
    write("handshake_request", "version8", request().replace(b"Version: 13", b"Version: 8"))
    write("handshake_request", "partial", request()[:40])
    write("handshake_request", "bare_lf", request().replace(b"\r\n", b"\n"))


# --- server_request: policy flags (bit 0 TLS, bit 1 origin allow-list, bit 2 Origin
# --- required, bit 3 deflate off), then the request head -------------------------------------

TLS, ALLOW_LIST, REQUIRE_ORIGIN, NO_DEFLATE = 1, 2, 4, 8


def upgrade(target="/chat", host="server.example.com", extra=""):
    return (f"GET {target} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\n"
            f"Sec-WebSocket-Version: 13\r\n{extra}\r\n").encode()


def server_request_seeds():
    def seed(name, flags, head):
        write("server_request", name, bytes([flags]) + head)
    seed("plain", 0, upgrade("/chat?room=1", "Server.Example.com:8080",
                             "Sec-WebSocket-Protocol: chat, superchat\r\n"
                             "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"))
    seed("tls_default_port", TLS, upgrade("/s", "a.example:443"))
    seed("ipv6", 0, upgrade("/x", "[::1]:9001"))
    seed("ipv4", NO_DEFLATE, upgrade("/x", "127.0.0.1"))
    seed("absolute_form", 0, upgrade("ws://server.example.com/abs?q=1"))
    seed("absolute_form_https", TLS, upgrade("https://a.example:443", "a.example"))
    seed("absolute_other_host", 0, upgrade("ws://evil.example/x"))
    seed("host_with_path", 0, upgrade("/public", "example.com/admin?"))
    seed("target_at_host", 0, upgrade("@evil.example/x"))
    seed("host_userinfo", 0, upgrade("/", "user:pw@example.com"))
    seed("host_numeric_name", 0, upgrade("/", "127.1"))
    seed("two_hosts", 0, upgrade(extra="Host: other.example\r\n"))
    seed("no_host", 0, upgrade().replace(b"Host: server.example.com\r\n", b""))
    seed("asterisk", 0, upgrade("*"))
    seed("authority_form", 0, upgrade("server.example.com:80"))
    seed("dot_segments", 0, upgrade("/a/%2e%2E/b/./c"))
    seed("encoded_chars", 0, upgrade("/a{b}\"?q='x'&%20"))
    seed("origin_allowed", ALLOW_LIST | REQUIRE_ORIGIN,
         upgrade(extra="Origin: HTTPS://App.Example:8443\r\n"))
    seed("origin_refused", ALLOW_LIST, upgrade(extra="Origin: https://evil.example\r\n"))
    seed("origin_missing", REQUIRE_ORIGIN, upgrade())
    seed("origin_twice", ALLOW_LIST,
         upgrade(extra="Origin: http://example.com\r\nOrigin: http://example.com\r\n"))


# --- handshake_response: flags (bit 0 compression offered, bits 1-2 subprotocols), head ----

def response(extra="", status="101 Switching Protocols"):
    return (f"HTTP/1.1 {status}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {ACCEPT}\r\n{extra}\r\n").encode()


def handshake_response_seeds():
    write("handshake_response", "plain", b"\x00" + response())
    write("handshake_response", "subprotocol", b"\x02" + response("Sec-WebSocket-Protocol: chat\r\n"))
    write("handshake_response", "deflate", b"\x01" + response(
        "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
        "client_max_window_bits=10\r\n"))
    write("handshake_response", "deflate_not_offered", b"\x00" + response(
        "Sec-WebSocket-Extensions: permessage-deflate\r\n"))
    write("handshake_response", "keep_alive", b"\x04" + response().replace(
        b"Connection: Upgrade", b"Connection: keep-alive, Upgrade") + frame(TEXT, b"first"))
    write("handshake_response", "refused", b"\x00" + (
        "HTTP/1.1 403 Forbidden\r\nContent-Length: 5\r\n\r\nnope!").encode())
    write("handshake_response", "wrong_accept", b"\x00" + response().replace(b"s3pP", b"xxxx"))
    write("handshake_response", "partial", b"\x00" + response()[:30])


# --- extensions: settings, windows, level, cut, header lines ('\n'), 0, payload ------------

def extensions_seeds():
    payload = ("permessage-deflate payload, payload, payload " * 4).encode() + bytes(range(64))
    def seed(name, header, flags=1, windows=0xFF, level=6, cut=5):
        write("extensions", name, bytes([flags, windows, level, cut]) + header.encode()
              + b"\x00" + payload)
    seed("client_offer", "permessage-deflate; client_max_window_bits")
    seed("brief_example",
         "permessage-deflate; client_max_window_bits; server_max_window_bits=10", windows=0x27)
    seed("all_params", "permessage-deflate; server_no_context_takeover; "
         "client_no_context_takeover; server_max_window_bits=9; client_max_window_bits=\"12\"",
         flags=7, windows=0x11)
    seed("fallback", "permessage-deflate; server_max_window_bits=20, permessage-deflate; "
         "client_max_window_bits=8", windows=0x00)
    seed("two_lines", "x-webkit-deflate-frame\npermessage-deflate;client_max_window_bits=15")
    seed("bits_8", "permessage-deflate; server_max_window_bits=8; client_max_window_bits",
         windows=0x00)
    seed("disabled", "permessage-deflate", flags=0)
    seed("malformed", "; server_max_window_bits=9, permessage-deflate; foo=\"bar")
    seed("quoted_escape", "permessage-deflate; client_max_window_bits=\"\\9\"; "
         "server_max_window_bits = \"10\"", windows=0x33)
    seed("signed_bits", "permessage-deflate; server_max_window_bits=+9, permessage-deflate; "
         "client_max_window_bits=09, permessage-deflate;\tclient_max_window_bits=9.0")
    seed("quoted_comma", "permessage-deflate; x=\"a,b;c\", permessage-deflate; "
         "server_max_window_bits=\" 9\"\npermessage-deflate;")


# --- utf8, close: raw bytes -----------------------------------------------------------------

def utf8_seeds():
    write("utf8", "mixed", "κόσμε, hello, 𝄞 and € signs".encode())
    write("utf8", "ascii", b"The quick brown fox jumps over the lazy dog")
    write("utf8", "surrogate", "κόσμε".encode() + b"\xed\xa0\x80edited")
    write("utf8", "above_max", b"\xf4\x90\x80\x80")
    write("utf8", "truncated", b"a\xe2\x82")
    write("utf8", "overlong", b"\xc0\xaf\xe0\x80\xaf")
    write("utf8", "edges", "\u007f\u0080\u07ff\u0800\uffff\U00010000\U0010ffff".encode())


def close_seeds():
    write("close", "empty", b"")
    write("close", "one_byte", b"\x03")
    write("close", "normal", b"\x03\xe8")
    write("close", "with_reason", b"\x03\xe8bye")
    write("close", "app_code", b"\x0f\xa0" + "κόσμε".encode())
    write("close", "no_status", b"\x03\xed")
    write("close", "reserved", b"\x0b\xb7")
    write("close", "bad_reason", b"\x03\xe8\xff")
    write("close", "long_reason", b"\x03\xf3" + b"r" * 124)


# --- proxy, redirect: a flags byte, a port or status, then the peer's bytes ------------------

def proxy_seeds():
    port = b"\x1f\x90"  # 8080
    write("proxy", "connect_200", b"\x00" + port + b"HTTP/1.1 200 Connection established\r\n\r\n")
    write("proxy", "connect_407", b"\x00" + port
          + b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n\r\n")
    write("proxy", "garbage", b"\x00" + port + b"SSH-2.0-OpenSSH_9.2\r\n")
    write("proxy", "socks_ok_v4", b"\x02" + port + b"\x05\x00\x00\x01\x7f\x00\x00\x01\x1f\x90")
    write("proxy", "socks_ok_name", b"\x02" + port + b"\x05\x00\x00\x03\x09localhost\x1f\x90")
    write("proxy", "socks_refused", b"\x00" + port + b"\x05\x05\x00\x01")
    write("proxy", "env", b"\x01" + port
          + b"http://u:p@proxy:3128\nsocks5h://[::1]:1080\n.example.com, 10.0.0.0/8, *.local:8080\nws.example.com")
    write("proxy", "env_loopback", b"\x01" + port + b"proxy:3128\nproxy:3128\n\n::ffff:127.0.0.1")


def redirect_seeds():
    write("redirect", "relative", b"\x00\x01\x2e/next?x=1")          # 302
    write("redirect", "other_host", b"\x00\x01\x33https://b.example/z")  # 307
    write("redirect", "to_plain", b"\x01\x01\x2dws://a.example/y")     # 301 from wss
    write("redirect", "not_url", b"\x00\x01\x34http://[::1")           # 308
    write("redirect", "not_redirect", b"\x00\x00\xc8/ok")              # 200


def forwarded_seeds():
    v2 = (b"\r\n\r\n\x00\r\nQUIT\n" + b"\x21\x11\x00\x0c"
          + bytes([192, 0, 2, 1, 127, 0, 0, 1]) + b"\xdc\x04\x01\xbb")
    write("forwarded", "v1_tcp4", b"\x00PROXY TCP4 192.0.2.1 127.0.0.1 56324 443\r\n")
    write("forwarded", "v1_unknown", b"\x00PROXY UNKNOWN\r\n")
    write("forwarded", "v2_tcp4", b"\x00" + v2)
    write("forwarded", "forwarded", b"\x00for=\"[2001:db8::1]:4711\";proto=https, for=10.0.0.3")
    write("forwarded", "xff", b"\x011.2.3.4, 203.0.113.9, 10.0.0.2")


if __name__ == "__main__":
    shutil.rmtree(ROOT, ignore_errors=True)
    decoder_seeds()
    roundtrip_seeds()
    handshake_request_seeds()
    server_request_seeds()
    handshake_response_seeds()
    extensions_seeds()
    utf8_seeds()
    close_seeds()
    proxy_seeds()
    redirect_seeds()
    forwarded_seeds()
    for t in sorted(os.listdir(ROOT)):
        print(f"{t}: {len(os.listdir(os.path.join(ROOT, t)))} seeds")
