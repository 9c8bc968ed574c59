#!/usr/bin/python3
"""
RFC 6455 framing from a raw socket after a valid handshake: every protocol
violation ends in the right close code (1002, 1007, 1009), the close
handshake, ping/pong, fragmentation and UTF-8 across fragments. Every
frame read is checked to be unmasked. Meanwhile a well-behaved client
(Python websockets) stays connected and must notice nothing.
"""
import asyncio
import os
import sys

sys.dont_write_bytecode = True   # keep the source tree clean

from myxidtest import (Client, Daemon, OP_BINARY, OP_CLOSE, OP_CONT, OP_PING,
                       OP_PONG, OP_TEXT, RawWS, Suite, check_pong, close_payload,
                       delivered, encode_frame, expect_close, publish,
                       require, standard_config, subscribed)

require()
T = Suite()
D = Daemon(standard_config(max_message_size="64k"))
PORT = D.port
MAX = 64 * 1024
PING = b'{"action":"Ping","tag":"f"}'


def violation(what, code, *frames, prelude=None):
    """Send frames (bytes) on a fresh connection; expect close code."""
    with RawWS(PORT) as ws:
        if prelude:
            ws.send(prelude)
        for f in frames:
            if not ws.send(f):
                break
        expect_close(ws, code, f"{what} -> close {code}")


@T.test
def protocol_errors_1002():
    violation("an unmasked client frame", 1002, encode_frame(OP_TEXT, PING, mask=False))
    for rsv in (4, 2, 1):
        violation(f"RSV bits {rsv:03b}", 1002, encode_frame(OP_TEXT, PING, rsv=rsv))
    violation("RSV1 on a ping", 1002, encode_frame(OP_PING, b"x", rsv=4))
    for op in (3, 4, 5, 6, 7):
        violation(f"reserved data opcode {op}", 1002, encode_frame(op, b"{}"))
    for op in (0xB, 0xC, 0xF):
        violation(f"reserved control opcode {op:#x}", 1002, encode_frame(op, b""))
    violation("a ping with a 126-byte payload", 1002, encode_frame(OP_PING, b"p" * 126))
    violation("a close with a 126-byte payload", 1002,
              encode_frame(OP_CLOSE, close_payload(1000, b"r" * 124)))
    violation("a pong with a 200-byte payload", 1002, encode_frame(OP_PONG, b"p" * 200))
    violation("a fragmented ping", 1002, encode_frame(OP_PING, b"a", fin=False),
              encode_frame(OP_CONT, b"b"))
    violation("a continuation with nothing to continue", 1002,
              encode_frame(OP_CONT, PING))
    violation("a new text frame inside a fragmented message", 1002,
              encode_frame(OP_TEXT, b'{"action":', fin=False),
              encode_frame(OP_TEXT, b'"Ping"}'))
    violation("a new binary frame inside a fragmented message", 1002,
              encode_frame(OP_TEXT, b'{"action":', fin=False),
              encode_frame(OP_BINARY, b'"Ping"}'))
    violation("a close with a 1-byte body", 1002, encode_frame(OP_CLOSE, b"\x03"))
    violation("a 64-bit length with the top bit set", 1002,
              encode_frame(OP_TEXT, b"", length=(1 << 63) + 5, length_form="64"))
    violation("a length not minimally encoded (16 bits for 5)", 1002,
              encode_frame(OP_TEXT, b"{}   ", length_form="16"))


@T.test
def close_codes():
    for code in (0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535):
        violation(f"a close with code {code}", 1002,
                  encode_frame(OP_CLOSE, close_payload(code)))
    violation("a close reason that is not UTF-8", 1007,
              encode_frame(OP_CLOSE, close_payload(1000, b"bad \xff reason")))
    violation("a close reason with a truncated UTF-8 sequence", 1007,
              encode_frame(OP_CLOSE, close_payload(1000, b"caf\xc3")))
    for code in (1000, 1001, 1003, 1007, 1011, 3000, 4999):
        with RawWS(PORT) as ws:
            ws.send_frame(OP_CLOSE, close_payload(code, "bye \u00e9"))
            f, before = ws.read_close()
            T.eq(f.close_code if f else None, code, f"close {code} is echoed with {code}")
            T.check(ws.at_eof(), f"after echoing close {code} the server closes TCP")
    with RawWS(PORT) as ws:
        ws.send_frame(OP_CLOSE, b"")
        f, before = ws.read_close()
        T.check(f is not None and (f.payload == b"" or f.close_code == 1000),
                "a close without a code is answered with a close (empty or 1000)", repr(f))
        T.check(ws.at_eof(), "then the server closes TCP")
    with RawWS(PORT) as ws:
        # Anything after the close frame is ignored.
        ws.send(encode_frame(OP_CLOSE, close_payload(1000)) + encode_frame(OP_TEXT, PING))
        f, before = ws.read_close()
        T.check(f is not None and f.close_code == 1000 and not before,
                "a message after the close frame is not answered", repr((f, before)))


@T.test
def utf8():
    violation("invalid UTF-8 in a text frame", 1007,
              encode_frame(OP_TEXT, b'{"action":"Ping","tag":"\xff"}'))
    violation("an overlong encoding", 1007,
              encode_frame(OP_TEXT, b'{"action":"Ping","tag":"\xc0\xaf"}'))
    violation("a UTF-16 surrogate (ED A0 80)", 1007,
              encode_frame(OP_TEXT, b'{"tag":"\xed\xa0\x80"}'))
    violation("a code point above U+10FFFF", 1007,
              encode_frame(OP_TEXT, b'{"tag":"\xf4\x90\x80\x80"}'))
    violation("invalid UTF-8 split across fragments", 1007,
              encode_frame(OP_TEXT, b'{"action":"Ping","tag":"\xc3', fin=False),
              encode_frame(OP_CONT, b'("}'))
    violation("a text message ending inside a UTF-8 sequence", 1007,
              encode_frame(OP_TEXT, b'{"action":"Ping","tag":"', fin=False),
              encode_frame(OP_CONT, b'\xe2\x82'))
    violation("invalid UTF-8 in the first fragment, before the message ends", 1007,
              encode_frame(OP_TEXT, b'{"tag":"\xff', fin=False))
    # Valid code points split across fragments (2-, 3- and 4-byte ones).
    tag = "\u00e9\u20ac\U0001f600"
    raw = ('{"action":"Ping","tag":"%s"}' % tag).encode()
    start = raw.index(b'"\xc3') + 2
    parts = [raw[:start], raw[start:start + 2], raw[start + 2:start + 5],
             raw[start + 5:start + 7], raw[start + 7:]]
    with RawWS(PORT) as ws:
        for i, p in enumerate(parts):
            ws.send_frame(OP_TEXT if i == 0 else OP_CONT, p, fin=i == len(parts) - 1)
        check_pong(ws.recv_text(), tag, "valid code points split across 5 fragments")
    # Binary messages are not UTF-8 checked by the framing layer; the JSON
    # layer refuses the bytes.
    with RawWS(PORT) as ws:
        ws.send_frame(OP_BINARY, b'{"action":"Ping","tag":"\xff"}')
        T.eq(ws.recv_text(), '{"event":"Error","payload":{"error":"InvalidJSON"}}',
             "invalid UTF-8 in a binary frame -> InvalidJSON, connection kept")
        ws.send_frame(OP_TEXT, PING)
        check_pong(ws.recv_text(), "f", "and the connection still works")


@T.test
def message_size():
    pad = MAX - len(PING)
    exact = PING[:-1] + b" " * pad + b"}"
    with RawWS(PORT) as ws:
        ws.send_frame(OP_TEXT, exact)
        check_pong(ws.recv_text(), "f", f"a message of exactly max_message_size ({MAX}) is accepted")
        half = len(exact) // 2
        ws.send_frame(OP_TEXT, exact[:half], fin=False)
        ws.send_frame(OP_CONT, exact[half:])
        check_pong(ws.recv_text(), "f", "the same in two fragments is accepted")
    violation("a message of max_message_size + 1", 1009,
              encode_frame(OP_TEXT, PING[:-1] + b" " * (pad + 1) + b"}"))
    with RawWS(PORT) as ws:
        # Only the header: the length alone is enough to refuse it.
        ws.send(encode_frame(OP_TEXT, b"", length=1 << 40, length_form="64")[:-4] + b"abcd")
        expect_close(ws, 1009, "a frame header announcing 1 TiB -> close 1009")
    with RawWS(PORT) as ws:
        ws.send(encode_frame(OP_BINARY, b"", length=(1 << 63) - 1, length_form="64")[:-4] + b"abcd")
        expect_close(ws, 1009, "a 64-bit length of 2^63-1 -> close 1009 (no overflow)")
    violation("fragments adding up past max_message_size", 1009,
              encode_frame(OP_TEXT, b"[" + b" " * 40000, fin=False),
              encode_frame(OP_CONT, b" " * 40000))
    violation("many small fragments adding up past max_message_size", 1009,
              *([encode_frame(OP_TEXT, b" " * 1000, fin=False)] +
                [encode_frame(OP_CONT, b" " * 1000, fin=False)] * 70))


@T.test
def ping_pong():
    with RawWS(PORT) as ws:
        for payload in (b"", b"hello", bytes(range(125)), os.urandom(100)):
            ws.send_frame(OP_PING, payload)
            f = ws.recv_frame()
            T.check(f.opcode == OP_PONG and f.payload == payload and f.fin,
                    f"ping with {len(payload)} bytes -> pong with the identical payload", repr(f))
        ws.send_frame(OP_PONG, b"unsolicited")
        ws.send_frame(OP_TEXT, PING)
        check_pong(ws.recv_text(), "f", "an unsolicited pong is ignored")
        # A ping between the fragments of a message.
        ws.send_frame(OP_TEXT, b'{"action":"Pi', fin=False)
        ws.send_frame(OP_PING, b"between")
        f = ws.recv_frame()
        T.check(f.opcode == OP_PONG and f.payload == b"between",
                "a ping between fragments -> pong with the identical payload", repr(f))
        ws.send_frame(OP_CONT, b'ng","tag":', fin=False)
        ws.send_frame(OP_PONG, b"x")
        ws.send_frame(OP_CONT, b'"frag"}')
        check_pong(ws.recv_text(), "frag", "then the fragmented message completes")
        # Empty fragments, and a message in binary fragments.
        ws.send_frame(OP_TEXT, b"", fin=False)
        ws.send_frame(OP_CONT, PING, fin=False)
        ws.send_frame(OP_CONT, b"")
        check_pong(ws.recv_text(), "f", "empty first and last fragments")
        ws.send_frame(OP_BINARY, PING[:5], fin=False)
        ws.send_frame(OP_CONT, PING[5:])
        check_pong(ws.recv_text(), "f", "a fragmented binary message is handled like text")
        ws.send_frame(OP_TEXT, b"")
        T.eq(ws.recv_text(), '{"event":"Error","payload":{"error":"InvalidJSON"}}',
             "an empty text frame -> InvalidJSON")


@T.test
def odd_but_valid_framing():
    with RawWS(PORT) as ws:
        ws.send_frame(OP_TEXT, PING, mask_key=b"\x00\x00\x00\x00")
        check_pong(ws.recv_text(), "f", "an all-zero mask key is fine")
        # Several frames in one write, then one frame a byte at a time.
        ws.send(encode_frame(OP_TEXT, PING) * 3)
        for i in range(3):
            check_pong(ws.recv_text(), "f", f"three frames in one write: reply {i + 1}")
        data = encode_frame(OP_TEXT, b'{"action":"Ping","tag":"' + b"x" * 200 + b'"}')
        for i in range(len(data)):
            ws.send(data[i:i + 1])
        check_pong(ws.recv_text(), "x" * 200,
                   "a frame with a 16-bit length sent one byte per write")


@T.test
async def other_clients_never_notice():
    async with Client(PORT, label="bystander") as c:
        await c.authenticate("demo-alice")
        await c.send("Subscribe", {"exchange": "deployment", "routing_key": "d1"}, 1)
        await c.expect(subscribed("deployment", "d1", 1), "bystander subscribes")
        loop = asyncio.get_running_loop()
        # Several connections killed for protocol errors meanwhile.
        def bad_clients():
            violation("(bystander phase) an unmasked frame", 1002,
                      encode_frame(OP_TEXT, PING, mask=False))
            violation("(bystander phase) invalid UTF-8", 1007,
                      encode_frame(OP_TEXT, b"\xff"))
            violation("(bystander phase) too big", 1009,
                      encode_frame(OP_TEXT, b"", length=MAX + 1)[:-4] + b"abcd")
            with RawWS(PORT) as ws:
                ws.send(encode_frame(OP_TEXT, PING)[:5])  # half a frame, then gone
        await loop.run_in_executor(None, bad_clients)
        await c.ping_roundtrip("the bystander still gets its Pong")
        resp = await loop.run_in_executor(
            None, lambda: publish(PORT, "deployment", "d1", "StatusChanged", {"s": 1}))
        T.eq((resp.status, resp.body.strip()), (200, b'{"ok":true,"delivered":1}'),
             "publish to the bystander's key")
        await c.expect(delivered("StatusChanged", {"s": 1}, "deployment", "d1"),
                       "the bystander still gets published events")
    T.check(D.alive(), "the daemon is still running")


if __name__ == "__main__":
    T.run()
