#!/usr/bin/python3
"""
permessage-deflate (RFC 7692): the offer a client makes and the answer
myxid gives, for each rule of section 5 and 7 (a raw client sends exactly
the offer under test); compressed frames on the wire (RSV1, inflatable
with Python's zlib, the same bytes for every subscriber of a publish,
small frames left plain); compressed client messages, whole and
fragmented; and what must close the socket: RSV1 without an agreement
(1002), RSV1 on a continuation or control frame (1002), data that is not
deflate (1007), text that inflates to invalid UTF-8 (1007), a deflate bomb
(1009, never inflated past max_message_size). Python websockets, with its
default offer, talks to it compressed both ways; websocket_compression off
answers no offer.
"""
import asyncio
import json
import sys
import zlib

sys.dont_write_bytecode = True   # keep the source tree clean

from myxidtest import (OP_CLOSE, OP_CONT, OP_PING, OP_TEXT, PUBLISH_KEY, Client, Daemon,
                       RawWS, Suite, close_payload, compact, expect_close, publish, require)

require()
T = Suite()

CONF = f"""\
publish_key {PUBLISH_KEY}
max_message_size 64k
websocket_compression_min_size 200
auth static {{
    tokens_file tokens
}}
exchange log {{
    policy static {{
        allow public
    }}
}}
"""
D = Daemon(CONF)
BASE = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"


def log_line(n):
    return f"Deploying release 42: step {n} of the rollout finished without errors. " * 8


def deflate(data, bits=15, final_tail=True):
    """A client's compressed message: raw deflate, sync flush, the
    trailing 00 00 ff ff removed (RFC 7692 7.2.1)."""
    c = zlib.compressobj(6, zlib.DEFLATED, -bits)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def inflate(data, bits=15):
    d = zlib.decompressobj(-bits)
    return d.decompress(data + b"\x00\x00\xff\xff")


NEGOTIATION = [
    ("permessage-deflate", BASE),
    ("permessage-deflate; client_max_window_bits", BASE),
    ("permessage-deflate; client_max_window_bits=10; client_no_context_takeover", BASE),
    ("permessage-deflate; server_no_context_takeover", BASE),
    ("permessage-deflate; server_max_window_bits=10", BASE + "; server_max_window_bits=10"),
    ('permessage-deflate; server_max_window_bits="12"', BASE + "; server_max_window_bits=12"),
    ("PerMessage-Deflate; Server_Max_Window_Bits=15", BASE + "; server_max_window_bits=15"),
    ("x-webkit-deflate-frame, permessage-deflate", BASE),
    ("permessage-deflate; server_max_window_bits=8, permessage-deflate; "
     "server_max_window_bits=9", BASE + "; server_max_window_bits=9"),
    ("permessage-deflate; foo, permessage-deflate", BASE),
    ("permessage-deflate; foo", None),
    ("permessage-deflate; server_max_window_bits=8", None),
    ("permessage-deflate; server_max_window_bits", None),
    ("permessage-deflate; server_max_window_bits=16", None),
    ("permessage-deflate; server_max_window_bits=010", None),
    ("permessage-deflate; client_max_window_bits=7", None),
    ("permessage-deflate; server_no_context_takeover=1", None),
    ("permessage-deflate; server_no_context_takeover; server_no_context_takeover", None),
    ("permessage-deflate;;", None),
    ('permessage-deflate; server_max_window_bits="1', None),
    ("permessage-deflate; =10", None),
    ("deflate-frame", None),
    (",,,", None),
    ("", None),
]


@T.test
def negotiation_follows_rfc_7692():
    for offer, want in NEGOTIATION:
        with RawWS(D.port, headers={"Sec-WebSocket-Extensions": offer}) as ws:
            T.eq(ws.response.headers.get("sec-websocket-extensions"), want,
                 f"offer {offer!r}")
    # Offers in two header lines: the first acceptable one wins.
    req = (f"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
           f"Sec-WebSocket-Extensions: foo\r\n"
           f"Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=11\r\n\r\n")
    with RawWS(D.port, request=req.encode(), key="dGhlIHNhbXBsZSBub25jZQ==") as ws:
        T.eq(ws.response.headers.get("sec-websocket-extensions"),
             BASE + "; server_max_window_bits=11", "offers over two header lines")


def subscribe_raw(ws):
    ws.send_text(compact({"action": "Subscribe", "tag": "s",
                          "payload": {"exchange": "log", "routing_key": "k"}}))
    f = ws.recv_frame()
    T.eq((f.rsv, f.text), (0, compact({"event": "Subscribed", "tag": "s", "payload": {
        "exchange": "log", "routing_key": "k"}})), "Subscribed: a reply, sent plain")


@T.test
def published_frames_are_compressed_once_for_all():
    offer = {"Sec-WebSocket-Extensions": "permessage-deflate"}
    with RawWS(D.port, headers=offer) as a, RawWS(D.port, headers=offer) as b, \
            RawWS(D.port, headers={"Sec-WebSocket-Extensions":
                                   "permessage-deflate; server_max_window_bits=9"}) as c, \
            RawWS(D.port) as plain:
        for ws in (a, b, c, plain):
            subscribe_raw(ws)
        big = log_line(1)
        want = compact({"event": "LogLine", "payload": {"line": big},
                        "mq": {"e": "log", "rk": "k"}}).encode()
        r = publish(D.port, "log", "k", "LogLine", {"line": big})
        T.eq(r.status, 200, "publish a long log line")
        fa, fb, fc, fp = a.recv_frame(), b.recv_frame(), c.recv_frame(), plain.recv_frame()
        T.eq((fa.rsv, fa.opcode), (4, OP_TEXT), "a negotiated socket gets RSV1 set")
        T.eq(inflate(fa.payload), want, "the payload inflates to the event")
        T.check(len(fa.payload) * 3 < len(want), "and is several times smaller",
                f"{len(fa.payload)} of {len(want)} bytes")
        T.eq(fb.payload, fa.payload, "another socket gets the very same compressed bytes")
        T.eq((fc.rsv, inflate(fc.payload, 9)), (4, want),
             "a 2^9 window socket gets a frame its window can inflate")
        T.eq((fp.rsv, fp.payload), (0, want), "a socket without the extension gets it plain")
        r = publish(D.port, "log", "k", "S", {"ok": 1})
        small = [ws.recv_frame() for ws in (a, plain)]
        T.eq([(f.rsv, f.text) for f in small], [(0, '{"event":"S","payload":{"ok":1},'
                                                 '"mq":{"e":"log","rk":"k"}}')] * 2,
             "a frame under websocket_compression_min_size goes plain")


@T.test
def compressed_client_messages():
    with RawWS(D.port, headers={"Sec-WebSocket-Extensions": "permessage-deflate"}) as ws:
        ping = compact({"action": "Ping", "tag": "p" * 300})
        ws.send_frame(OP_TEXT, deflate(ping.encode()), rsv=4)
        f = ws.recv_frame()
        T.check(f.opcode == OP_TEXT and '"tag":"' + "p" * 300 + '"' in f.text,
                "a compressed action is inflated and answered", repr(f))
        z = deflate(compact({"action": "Ping", "tag": "frag"}).encode())
        ws.send_frame(OP_TEXT, z[:5], fin=False, rsv=4)
        ws.send_frame(OP_PING, b"mid")
        ws.send_frame(OP_CONT, z[5:])
        pong = ws.recv_frame()
        T.eq(pong.payload, b"mid", "a ping between the fragments is answered")
        f = ws.recv_frame()
        T.check('"tag":"frag"' in f.text, "a fragmented compressed message is inflated whole",
                repr(f))
        ws.send_text(compact({"action": "Ping", "tag": "plain"}))
        T.check('"tag":"plain"' in ws.recv_frame().text,
                "an uncompressed message on the same socket is fine too")


def closes_with(offer, frames, code, what):
    with RawWS(D.port, headers={"Sec-WebSocket-Extensions": offer} if offer else None) as ws:
        for f in frames:
            ws.send(f)
        expect_close(ws, code, what)


@T.test
def bad_compressed_input_closes_the_socket():
    from myxidtest import encode_frame
    text = compact({"action": "Ping"}).encode()
    closes_with(None, [encode_frame(OP_TEXT, deflate(text), rsv=4)], 1002,
                "RSV1 without permessage-deflate: 1002")
    closes_with("permessage-deflate", [encode_frame(OP_TEXT, text, fin=False),
                                       encode_frame(OP_CONT, text, rsv=4)], 1002,
                "RSV1 on a continuation frame: 1002")
    closes_with("permessage-deflate", [encode_frame(OP_PING, b"x", rsv=4)], 1002,
                "RSV1 on a control frame: 1002")
    closes_with("permessage-deflate", [encode_frame(OP_TEXT, text, rsv=2)], 1002,
                "RSV2 even with permessage-deflate: 1002")
    closes_with("permessage-deflate", [encode_frame(OP_TEXT, b"\xff\xff\xff\xff garbage",
                                                    rsv=4)], 1007,
                "data that is not deflate: 1007")
    closes_with("permessage-deflate", [encode_frame(OP_TEXT, deflate(b"\xc3\x28 bad"), rsv=4)],
                1007, "text that inflates to invalid UTF-8: 1007")
    bomb = deflate(b"\x20" * (50 * 1024 * 1024))
    T.check(len(bomb) < 64 * 1024, "the bomb fits under max_message_size on the wire",
            len(bomb))
    closes_with("permessage-deflate", [encode_frame(OP_TEXT, bomb, rsv=4)], 1009,
                "a deflate bomb (50 MiB of spaces) is stopped at max_message_size: 1009")
    def ping_of(size):
        head, tail = b'{"action":"Ping","tag":"', b'"}'
        return head + b"a" * (size - len(head) - len(tail)) + tail
    with RawWS(D.port, headers={"Sec-WebSocket-Extensions": "permessage-deflate"}) as ws:
        ws.send_frame(OP_TEXT, deflate(ping_of(64 * 1024)), rsv=4)
        f = ws.recv_frame()
        T.check(f.opcode == OP_TEXT and f.text.startswith('{"event":"Pong","tag":"aaaa'),
                "a message inflating to exactly max_message_size is answered", repr(f)[:100])
    closes_with("permessage-deflate", [encode_frame(OP_TEXT, deflate(ping_of(64 * 1024 + 1)),
                                                    rsv=4)], 1009,
                "one byte more once inflated: 1009")
    T.check(D.alive(), "the daemon is alive")


@T.test
async def python_websockets_talks_compressed():
    async with Client(D.port) as c:
        T.eq(c.ws.response_headers.get("Sec-WebSocket-Extensions"), BASE,
             "websockets' default offer is accepted")
        await c.send("Subscribe", {"exchange": "log", "routing_key": "py"}, "s")
        await c.recv()
        lines = [log_line(n) for n in range(3)]
        for n, line in enumerate(lines):
            publish(D.port, "log", "py", "LogLine", {"line": line})
        for line in lines:
            await c.expect({"event": "LogLine", "payload": {"line": line},
                            "mq": {"e": "log", "rk": "py"}}, "a long line arrives intact")
        big_tag = "t" * 5000
        await c.send("Ping", tag=big_tag)
        got = await c.recv_json()
        T.eq((got["event"], got["tag"]), ("Pong", big_tag),
             "a long action, compressed by websockets, is answered")


@T.test
def compression_can_be_turned_off():
    d = Daemon(CONF + "websocket_compression off\n", name="off")
    with RawWS(d.port, headers={"Sec-WebSocket-Extensions": "permessage-deflate"}) as ws:
        T.eq(ws.response.headers.get("sec-websocket-extensions"), None,
             "websocket_compression off: no extension in the answer")
        ws.send_frame(OP_TEXT, deflate(b'{"action":"Ping"}'), rsv=4)
        expect_close(ws, 1002, "and RSV1 is a protocol error there")
    d.stop()


if __name__ == "__main__":
    T.run()
