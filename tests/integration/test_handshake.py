#!/usr/bin/python3
"""
The HTTP upgrade (RFC 6455 section 4) driven from a raw socket: the 101
answer, every refusal with its status, the size and time limits, and bytes
that arrive in the same write as the request.
"""
import socket
import sys
import time

sys.dont_write_bytecode = True   # keep the source tree clean

from myxidtest import (Daemon, OP_TEXT, RawWS, Suite, check_pong,
                       encode_frame, handshake_request, http_raw, require,
                       standard_config, ws_accept, new_key)

require()
T = Suite()
D = Daemon()
PORT = D.port


def refused(resp, status, what):
    """A refusal: the status, a Connection: close answer, and the server
    closed the connection (http_raw read to EOF, so it did not hang)."""
    ok = T.eq(resp.status, status, f"{what} -> {status}")
    T.check(resp.complete and resp.headers.get("connection", "").lower() == "close",
            f"{what}: a complete answer with Connection: close", repr(resp))
    T.check("sec-websocket-accept" not in resp.headers,
            f"{what}: no Sec-WebSocket-Accept", repr(resp))
    return ok


@T.test
def valid_upgrade():
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    req = handshake_request(PORT, key=key, headers={"Origin": "http://example.com"})
    with socket.create_connection(("127.0.0.1", PORT), timeout=5) as s:
        s.sendall(req)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    head = data.split(b"\r\n\r\n")[0].decode("latin-1")
    lines = head.split("\r\n")
    T.eq(lines[0], "HTTP/1.1 101 Switching Protocols", "status line")
    hdrs = {k.strip().lower(): v.strip() for k, _, v in
            (line.partition(":") for line in lines[1:])}
    T.eq(hdrs.get("sec-websocket-accept"), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
         "Sec-WebSocket-Accept for RFC 6455's sample key")
    T.eq(hdrs.get("upgrade", "").lower(), "websocket", "Upgrade: websocket")
    T.check("upgrade" in [t.strip().lower() for t in hdrs.get("connection", "").split(",")],
            "Connection: Upgrade", repr(hdrs))
    T.check("sec-websocket-extensions" not in hdrs and "sec-websocket-protocol" not in hdrs,
            "no extension or subprotocol is negotiated", repr(hdrs))


@T.test
def refusals():
    refused(http_raw(PORT, handshake_request(PORT, method="POST")), 405,
            "POST with upgrade headers")
    resp = http_raw(PORT, handshake_request(PORT, version="8"))
    refused(resp, 426, "Sec-WebSocket-Version: 8")
    T.eq(resp.headers.get("sec-websocket-version"), "13",
         "426 carries Sec-WebSocket-Version: 13")
    # RFC 6455 4.2.2: a missing version is a bad request (400) or answered
    # like an unsupported one (426 naming version 13); either refuses.
    resp = http_raw(PORT, handshake_request(PORT, drop=("Sec-WebSocket-Version",)))
    T.check(resp.status in (400, 426), "no Sec-WebSocket-Version -> 400 or 426", repr(resp))
    refused(http_raw(PORT, handshake_request(PORT, drop=("Sec-WebSocket-Key",))), 400,
            "no Sec-WebSocket-Key")
    refused(http_raw(PORT, handshake_request(PORT, key="abc")), 400,
            "Sec-WebSocket-Key that is not base64 of 16 bytes")
    refused(http_raw(PORT, handshake_request(PORT, key="AAAAAAAAAAAAAAAAAAAA")), 400,
            "Sec-WebSocket-Key of 15 bytes")
    refused(http_raw(PORT, handshake_request(PORT, key="!!!!!!!!!!!!!!!!!!!!!A==")), 400,
            "Sec-WebSocket-Key with characters outside base64")
    refused(http_raw(PORT, b"HELLO THERE\r\n\r\n"), 400, "garbage request line")
    refused(http_raw(PORT, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64),
            400, "a TLS ClientHello")
    refused(http_raw(PORT, b"GET / HTTP/1.1\r\nHost x\r\n\r\n"), 400,
            "a header line without a colon")
    # Garbage and then half-close: the answer still arrives in full.
    refused(http_raw(PORT, b"garbage\r\n\r\n", shut_wr=True), 400,
            "garbage then a half-close")
    refused(http_raw(PORT, handshake_request(PORT).replace(b"HTTP/1.1", b"HTTP/1.0", 1)),
            400, "an upgrade over HTTP/1.0")
    refused(http_raw(PORT, handshake_request(PORT, drop=("Host",))), 400, "no Host header")
    for label, req in [
        ("a key but no Upgrade header", handshake_request(PORT, drop=("Upgrade",))),
        ("Connection without the Upgrade token",
         handshake_request(PORT, headers={"Connection": "keep-alive"})),
        ("Upgrade: h2c", handshake_request(PORT, headers={"Upgrade": "h2c"})),
    ]:
        resp = http_raw(PORT, req)
        T.check(resp.status is not None and 400 <= resp.status < 500,
                f"{label} gets a 4xx, not 101", repr(resp))


@T.test
def size_limit():
    # The head grows past max_handshake_size (8k) without ending.
    big = handshake_request(PORT).replace(b"\r\n\r\n", b"\r\nX-Pad: " + b"a" * 9000 + b"\r\n\r\n")
    refused(http_raw(PORT, big), 431, "a 9 KB request head")
    start = b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"b" * 10000
    refused(http_raw(PORT, start), 431, "an unterminated 10 KB header line")
    try:
        with RawWS(PORT, headers={"X-Pad": "c" * 6000}):
            T.check(True, "a 6 KB head is within the limit")
    except AssertionError as exc:
        T.check(False, "a 6 KB head is within the limit", str(exc))


@T.test
def header_forms():
    for label, headers in [
        ("Connection: keep-alive, Upgrade", {"Connection": "keep-alive, Upgrade"}),
        ("Connection: upgrade (lower case)", {"Connection": "upgrade"}),
        ("Upgrade: WebSocket (mixed case)", {"Upgrade": "WebSocket"}),
    ]:
        try:
            with RawWS(PORT, headers=headers) as ws:
                T.check(ws.welcome is not None, f"{label} upgrades")
        except AssertionError as exc:
            T.check(False, f"{label} upgrades", str(exc))
    # Header names in any case.
    key = new_key()
    req = (f"GET / HTTP/1.1\r\nhost: 127.0.0.1\r\nuPGRADE: websocket\r\n"
           f"CONNECTION: Upgrade\r\nsec-websocket-key: {key}\r\n"
           f"SEC-WEBSOCKET-VERSION: 13\r\n\r\n").encode()
    try:
        # RawWS checks the 101 and the Accept computed from this key.
        with RawWS(PORT, request=req, key=key):
            T.check(True, "header names are case-insensitive (101, right Accept, Welcome)")
    except AssertionError as exc:
        T.check(False, "header names are case-insensitive", str(exc))


@T.test
def frames_in_the_same_write():
    ping = encode_frame(OP_TEXT, b'{"action":"Ping","tag":"early"}')
    with RawWS(PORT, extra=ping) as ws:
        text = ws.recv_text()
        check_pong(text, "early", "a frame in the same write as the request gets its Pong")
    # Byte by byte: the request, then the frame, one byte per write.
    key = new_key()
    data = handshake_request(PORT, key=key) + ping
    with socket.create_connection(("127.0.0.1", PORT), timeout=5) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(data)):
            s.sendall(data[i:i + 1])
        buf = b""
        deadline = time.monotonic() + 5
        while buf.count(b'"event"') < 2 and time.monotonic() < deadline:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
    T.check(ws_accept(key).encode() in buf and b'"event":"Welcome"' in buf
            and b'"event":"Pong","tag":"early"' in buf,
            "request and frame sent one byte per write -> 101, Welcome, Pong", repr(buf[:400]))


@T.test
def http_on_the_same_port():
    resp = http_raw(PORT, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    T.eq(resp.status, 200, "GET /healthz next to the WebSocket endpoint")
    resp = http_raw(PORT, b"GET /nothing-here HTTP/1.1\r\nHost: x\r\n\r\n")
    T.eq(resp.status, 404, "a plain GET of an unknown path -> 404")


@T.test(timeout=15)
def handshake_timeout():
    d = Daemon(standard_config(handshake_timeout="1s"), name="myxid (handshake_timeout 1s)")
    t0 = time.monotonic()
    resp = http_raw(d.port, b"", timeout=5)
    took = time.monotonic() - t0
    refused(resp, 408, "a client that sends nothing")
    T.check(0.8 <= took <= 3.0, "408 comes after about handshake_timeout (1s)", f"{took:.2f}s")
    t0 = time.monotonic()
    resp = http_raw(d.port, b"GET / HTTP/1.1\r\nHost: x\r\n", timeout=5)
    took = time.monotonic() - t0
    refused(resp, 408, "a client that stops half-way through its request")
    T.check(0.8 <= took <= 3.0, "that 408 also comes after about 1s", f"{took:.2f}s")
    # The timer stops at the upgrade: an idle WebSocket stays open.
    with RawWS(d.port) as ws:
        time.sleep(1.5)
        ws.send_text('{"action":"Ping","tag":"idle"}')
        check_pong(ws.recv_text(), "idle", "an idle WebSocket outlives handshake_timeout")
    d.stop()


if __name__ == "__main__":
    T.run()
