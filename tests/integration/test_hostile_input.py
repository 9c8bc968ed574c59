#!/usr/bin/python3
"""
Hostile input, through real clients (Python websockets for well-formed
frames, raw sockets for the rest): deeply nested JSON, huge strings, NUL
bytes inside strings, the wrong JSON type for every field of every action,
64-bit frame lengths near overflow, invalid UTF-8 (and lone UTF-16
surrogates) wherever a string enters, and tokens and routing keys built to
inject SQL or log lines (newlines, ANSI escapes). Each gets its exact
error, nothing crashes, and after every case the daemon's log (at debug
level, where most client text is quoted) is read: one well-formed line per
event, no raw control byte from a client, no token.

Already covered elsewhere (not repeated): InvalidJSON forms and nesting up
to 5000 objects (test_protocol.py invalid_json), payload types
(invalid_payload), routing key number/boolean/missing (subscribe_routing_key_types),
invalid UTF-8 in text/binary frames and close reasons (test_frames.py utf8,
close_codes), 2^63-1 and 1 TiB lengths and the 64-bit top bit
(message_size, protocol_errors_1002), SQL injection through the pgsql and
mysql plugins (test_pgsql.py sql_injection_*, test_mysql.py injection_through_tokens).
"""
import json
import sys

sys.dont_write_bytecode = True   # keep the source tree clean

from myxidtest import (OP_BINARY, OP_CONT, OP_TEXT, PUBLISH_KEY, Client, Daemon,
                       INVALID_JSON, RawWS, Suite, check_pong, compact, delivered,
                       encode_frame, error, expect_close, handshake_request,
                       http_request, publish, require, standard_config, subscribed)
from hostile import LOG_LINE_RE, LogWatch, http_head

require()
T = Suite()

MAX = 1024 * 1024
D = Daemon(standard_config(max_message_size="1m",
                           extra="max_subscriptions 100000\nmax_actions_per_second 0\n"
                                 "trusted_proxy 127.0.0.1/32\nworkers 1")
           .replace("log_level info", "log_level debug"), name="hostile")
PORT = D.port
LOG = LogWatch(D)

# Strings that try to forge a log line or a terminal escape, or to inject SQL.
FORGERIES = [
    "k\nFORGED-1 error: a forged log line",
    "k\r\nFORGED-2 notice: CRLF",
    "\x1b[2J\x1b[31mFORGED-3\x1b[0m",
    "k\x1b]0;FORGED-4 title\x07",
    "k\x7fFORGED-5\x08\x08\x08",
    "k\u2028FORGED-6 line separator",
    "' OR '1'='1",
    "x'; DROP TABLE authie_sessions; --",
    '"); DELETE FROM x; --',
    "%s%s%s%n%n FORGED-7",
]
RAW_FORBIDDEN = [b"\nFORGED", b"\rFORGED", b"\x1b", b"\x07", b"\x7f", b"\x08", b"\x00"]


def done(what, forbidden=()):
    """After each case: the daemon is alive and its new log lines are clean."""
    T.check(D.alive(), f"{what}: the daemon is still running")
    return LOG.check(what, list(RAW_FORBIDDEN) + list(forbidden))


# ------------------------------------------------------------ nesting, size

def nested_arrays(depth):
    return "[" * depth + "]" * depth


@T.test(timeout=60)
async def deep_nesting_and_huge_strings():
    async with Client(PORT) as c:
        cases = [
            ("200,000 nested arrays", nested_arrays(200000)),
            ("200,000 unclosed arrays", "[" * 200000),
            ("100,000 unclosed objects", '{"a":' * 100000),
            ("a Ping whose payload nests 100,000 deep",
             '{"action":"Ping","tag":"n","payload":' + nested_arrays(100000) + "}"),
            ("a Ping whose payload nests 33 deep (one past the limit)",
             '{"action":"Ping","tag":"n","payload":{"a":' + nested_arrays(31) + "}}"),
            ("mixed nesting 60,000 deep", "[{\"a\":" * 30000 + "1" + "}]" * 30000),
        ]
        for label, text in cases:
            await c.send_raw(text)
            await c.expect(INVALID_JSON, f"{label} -> InvalidJSON")
        done("deep nesting")

        big = "x" * (MAX - 100)
        await c.send("Ping", tag=big)
        raw = await c.recv(10)
        check_pong(raw, big, "a tag of ~1 MB is echoed whole in the Pong")
        await c.send("Authenticate", {"session_id": big}, "a")
        await c.expect(error("InvalidAuthentication", "a"), "a token of ~1 MB -> InvalidAuthentication")
        await c.send("Subscribe", {"exchange": "public", "routing_key": big}, "s")
        await c.expect(error("InvalidRoutingKey", "s", "public", big), "a routing key of ~1 MB -> "
                       "InvalidRoutingKey (echoed)", 10)
        await c.send("Subscribe", {"exchange": big, "routing_key": "k"}, "e")
        await c.expect(error("InvalidExchange", "e", big), "an exchange name of ~1 MB -> "
                       "InvalidExchange (echoed)", 10)
        await c.send(big, tag="act")
        await c.expect(error("InvalidAction", "act"), "an action name of ~1 MB -> InvalidAction")
        keys = [str(i) for i in range(60000)]
        await c.send("Subscribe", {"exchange": "public", "routing_keys": keys}, "many")
        await c.expect(error("TooManyRoutingKeys", "many", "public"),
                       "60,000 routing_keys in one Subscribe -> TooManyRoutingKeys")
        wide = {f"k{i}": i for i in range(50000)}
        await c.send("Ping", wide, "wide")
        await c.expect_pong("wide", "a payload object with 50,000 members is fine")
        await c.ping_roundtrip("the connection survives it all")
    done("huge strings", [b"x" * 200])


# ------------------------------------------------------------ NUL bytes

@T.test
async def nul_bytes_inside_strings():
    async with Client(PORT) as c:
        await c.send("Ping\u0000junk", tag="n1")
        await c.expect(error("InvalidAction", "n1"),
                       "action \"Ping\\u0000junk\" -> InvalidAction, not Ping")
        await c.send("Ping", tag="a\u0000b")
        check_pong(await c.recv(), "a\u0000b", "a tag with NUL is echoed whole (\\u0000)")
        await c.send("Authenticate", {"session_id": "demo-alice\u0000junk"}, "n2")
        await c.expect(error("InvalidAuthentication", "n2"),
                       "token \"demo-alice\\u0000junk\" is not demo-alice")
        await c.send("Authenticate", {"session_id": "\u0000"}, "n3")
        await c.expect(error("InvalidAuthentication", "n3"), "token \"\\u0000\" -> InvalidAuthentication")
        await c.send("Subscribe", {"exchange": "public\u0000junk", "routing_key": "k"}, "n4")
        await c.expect(error("InvalidExchange", "n4", "public\u0000junk"),
                       "exchange \"public\\u0000junk\" -> InvalidExchange, not public")
        await c.send("Subscribe", {"exchange": "public", "routing_key": "k\u0000j"}, "n5")
        await c.expect(error("InvalidRoutingKey", "n5", "public", "k\u0000j"),
                       "routing key with NUL -> InvalidRoutingKey")
        await c.send("Unsubscribe", {"exchange": "public\u0000junk"}, "n6")
        await c.expect(error("InvalidExchange", "n6", "public\u0000junk"),
                       "Unsubscribe from \"public\\u0000junk\" -> InvalidExchange")
        await c.send("ListSubscriptions", tag="l")
        await c.expect({"event": "YourSubscriptions", "tag": "l",
                        "payload": {"subscriptions": {}}}, "no subscription was made")
    r = publish(PORT, "public\u0000junk", "k", "E", {})
    T.eq(r.status, 400, "POST /publish to exchange \"public\\u0000junk\" -> 400, not public")
    r = publish(PORT, "public", "k\u0000j", "E", {})
    T.eq(r.status, 400, "POST /publish with a NUL in the routing key -> 400")
    r = publish(PORT, "public", "k", "E\u0000v", {})
    T.eq(r.status, 200, "POST /publish with a NUL in the event name -> 200 (it is only "
         "relayed, as \\u0000)")
    done("NUL bytes")


# ------------------------------------------------------------ JSON types

WRONG = [("a number", 5), ("a float", 1.5), ("an array", ["Ping"]), ("an object", {"a": 1}),
         ("true", True), ("false", False), ("null", None)]


@T.test(timeout=30)
async def wrong_types_for_every_field():
    async with Client(PORT) as c:
        for label, v in WRONG:
            await c.send(v, tag="t")
            await c.expect(error("InvalidAction", "t"), f"action {label} -> InvalidAction")
        await c.send(tag="t")
        await c.expect(error("InvalidAction", "t"), "no action -> InvalidAction")
        for label, v in WRONG:
            await c.send("Ping", tag=v)
            check_pong(await c.recv(), v, f"tag {label}: echoed as sent")
        for label, v in WRONG + [("an empty string", "")]:
            await c.send("Authenticate", {"session_id": v}, "a")
            await c.expect(error("InvalidAuthentication", "a"),
                           f"Authenticate session_id {label} -> InvalidAuthentication")
        await c.send("Authenticate", {"session": "demo-alice"}, "a")
        await c.expect(error("InvalidAuthentication", "a"), "no token field -> InvalidAuthentication")
        for label, v in WRONG:
            await c.send("Subscribe", {"exchange": v, "routing_key": "k"}, "s")
            await c.expect(error("InvalidExchange", "s", v),
                           f"Subscribe exchange {label} -> InvalidExchange (echoed)")
        await c.send("Subscribe", {"routing_key": "k"}, "s")
        await c.expect(error("InvalidExchange", "s"), "Subscribe without exchange -> InvalidExchange")
        for label, v in (("an array", ["a"]), ("an object", {"a": 1})):
            await c.send("Subscribe", {"exchange": "public", "routing_key": v}, "s")
            await c.expect(error("InvalidRoutingKey", "s", "public", v),
                           f"Subscribe routing_key {label} -> InvalidRoutingKey (echoed)")
            await c.send("Subscribe", {"exchange": "public", "routing_keys": [v]}, "s")
            await c.expect(error("InvalidRoutingKey", "s", "public", v),
                           f"Subscribe routing_keys [{label}] -> InvalidRoutingKey (echoed)")
            await c.send("Unsubscribe", {"exchange": "public", "routing_key": v}, "u")
            await c.expect(error("InvalidRoutingKey", "u", "public", v),
                           f"Unsubscribe routing_key {label} -> InvalidRoutingKey (echoed)")
        for label, v in (("a number", 5), ("an array", ["public"]), ("an object", {}),
                         ("true", True)):
            await c.send("Unsubscribe", {"exchange": v}, "u")
            await c.expect(error("InvalidExchange", "u", v),
                           f"Unsubscribe exchange {label} -> InvalidExchange (echoed)")
        await c.send("ListSubscriptions", tag="l")
        await c.expect({"event": "YourSubscriptions", "tag": "l",
                        "payload": {"subscriptions": {}}}, "none of it subscribed anything")
        await c.ping_roundtrip("and the connection is still fine")
    # The publish API checks its fields' types too.
    for field, v in (("exchange", 5), ("exchange", None), ("routing_key", ["a"]),
                     ("routing_key", {"a": 1}), ("event", 5), ("event", None)):
        doc = {"exchange": "public", "routing_key": "k", "event": "E", "payload": {}}
        doc[field] = v
        r = http_request(PORT, "POST", "/publish",
                         {"Authorization": f"Bearer {PUBLISH_KEY}",
                          "Content-Type": "application/json"}, compact(doc))
        T.check(r.status in (400, 404) and r.complete, f"POST /publish with {field} "
                f"{json.dumps(v)} -> 400/404", repr(r))
        try:
            T.check(isinstance(r.json().get("error"), str), f"... with a JSON error ({field})",
                    repr(r))
        except ValueError:
            T.check(False, f"... with a JSON error ({field})", repr(r))
    done("wrong types")


# ------------------------------------------------------------ frame lengths

@T.test(timeout=30)
def frame_lengths_near_overflow():
    header_only = lambda op, n: encode_frame(op, b"", length=n, length_form="64")[:-4] + b"abcd"
    cases = [
        ("2^64-1", header_only(OP_TEXT, (1 << 64) - 1), 1002),
        ("2^63 (top bit)", header_only(OP_BINARY, 1 << 63), 1002),
        ("2^32", header_only(OP_TEXT, 1 << 32), 1009),
        ("2^32-1", header_only(OP_TEXT, (1 << 32) - 1), 1009),
        ("2^31", header_only(OP_TEXT, 1 << 31), 1009),
        ("max_message_size + 1 in 64 bits", header_only(OP_TEXT, MAX + 1), 1009),
    ]
    for label, data, code in cases:
        with RawWS(PORT) as ws:
            ws.send(data)
            expect_close(ws, code, f"a frame length of {label} -> close {code}")
    frag = encode_frame(OP_TEXT, b"[" + b" " * 999, fin=False)
    for label, n, code in (("2^63-1", (1 << 63) - 1, 1009),
                           ("2^64-1000", (1 << 64) - 1000, 1002),
                           ("max_message_size - 999", MAX - 999, 1009),
                           ("2^63 - 999 (the sum is 2^63 + 1)", (1 << 63) - 999, 1009)):
        with RawWS(PORT) as ws:
            ws.send(frag + encode_frame(OP_CONT, b"", length=n, fin=True,
                                        length_form="64")[:-4] + b"abcd")
            expect_close(ws, code, f"1000 bytes, then a continuation of {label} -> close {code}")
    with RawWS(PORT) as ws:
        exact = MAX - 1000
        ws.send(frag)
        ws.send(encode_frame(OP_CONT, b" " * (exact - 1) + b"]"))
        T.eq(ws.recv_text(), INVALID_JSON, "fragments adding up to exactly max_message_size "
             "are read whole (then refused as JSON: an array)")
    done("frame lengths")


# ------------------------------------------------------------ UTF-8

SURROGATES = [("a lone high surrogate", "\\ud800", "\ufffd", "Subscribed"),
              ("a lone low surrogate", "\\udc00", "\ufffd", "AlreadySubscribed"),
              ("a reversed pair", "\\udc00\\ud800", "\ufffd\ufffd", "Subscribed")]


@T.test(timeout=30)
async def invalid_utf8_everywhere():
    # JSON escapes that are no Unicode text become U+FFFD (json-c), so what
    # is echoed stays valid UTF-8 (a browser would close with 1007 otherwise).
    async with Client(PORT) as c:
        for label, esc, fffd, sub_reply in SURROGATES:
            await c.send_raw('{"action":"Ping","tag":"t' + esc + '"}')
            check_pong(await c.recv(), "t" + fffd, f"tag with {label}: echoed with U+FFFD")
            await c.send_raw('{"action":"Authenticate","tag":"a","payload":{"session_id":"demo-alice'
                             + esc + '"}}')
            await c.expect(error("InvalidAuthentication", "a"),
                           f"token with {label}: InvalidAuthentication")
            await c.send_raw('{"action":"Subscribe","tag":"s","payload":{"exchange":"public",'
                             '"routing_key":"k' + esc + '"}}')
            want = subscribed("public", "k" + fffd, "s") if sub_reply == "Subscribed" else \
                error("AlreadySubscribed", "s", "public", "k" + fffd)
            await c.expect(want, f"routing key with {label}: {sub_reply}, the key with U+FFFD "
                           "(both lone surrogates are the same key)")
        await c.ping_roundtrip("the connection survives lone surrogates")
    done("lone surrogates")

    # Raw invalid UTF-8 in a text frame's tag is 1007 (test_frames.py);
    # here: in the HTTP request that opens the socket, and in publishes.
    # (No allow_origin here: any Origin is taken, and Host is not checked.)
    for label, req, status in (
        ("the path", handshake_request(PORT).replace(b"GET / ", b"GET /\xff\xfe\xc0\xaf "), 400),
        ("the Origin", handshake_request(PORT, headers={"Origin": "x"}).replace(
            b"Origin: x", b"Origin: https://\xff\xfe.example"), 101),
        ("the Host", handshake_request(PORT).replace(b"Host: 127.0.0.1", b"Host: \xc3\x28"), 101),
        ("a header name", handshake_request(PORT).replace(b"\r\n\r\n", b"\r\nX-\xff: 1\r\n\r\n"),
         400),
        ("the Sec-WebSocket-Key", handshake_request(PORT, key="\xff" * 16), 400),
    ):
        r = http_head(PORT, req)
        T.check(r.status == status and r.complete,
                f"invalid UTF-8 in {label}: HTTP {status}", repr(r))
    r = http_request(PORT, "POST", "/publish", {"Authorization": f"Bearer {PUBLISH_KEY}",
                                                "Content-Type": "application/json"},
                     b'{"exchange":"public","routing_key":"k\xff","event":"E","payload":{}}')
    T.eq(r.status, 400, "POST /publish with invalid UTF-8 in the body -> 400")
    r = http_request(PORT, "POST", "/publish", {"Authorization": f"Bearer {PUBLISH_KEY}",
                                                "Content-Type": "application/json"},
                     b'{"exchange":"public","routing_key":"k","event":"E","payload":"\\ud800"}')
    T.eq(r.status, 200, "POST /publish with a lone surrogate escape in the payload -> 200 "
         "(relayed as U+FFFD)")
    r = http_request(PORT, "POST", "/publish", {"Authorization": "Bearer \xff\xfe"}, b"{}")
    T.eq(r.status, 401, "POST /publish with a key that is not UTF-8 -> 401")
    async with Client(PORT) as c:
        await c.ping_roundtrip("a well-behaved client is served afterwards")
    done("invalid UTF-8 in HTTP")


# ------------------------------------------------------------ injection

@T.test(timeout=40)
async def injection_through_tokens_and_keys():
    secret = [f.encode() for f in FORGERIES]
    async with Client(PORT) as c, Client(PORT, label="sub") as sub:
        for i, tok in enumerate(FORGERIES):
            await c.send("Authenticate", {"session_id": tok}, f"a{i}")
            await c.expect(error("InvalidAuthentication", f"a{i}"),
                           f"token {tok!r} -> InvalidAuthentication")
        done("injection through tokens", secret)
        for i, key in enumerate(FORGERIES):
            await sub.send("Subscribe", {"exchange": "public", "routing_key": key}, f"s{i}")
            await sub.expect(subscribed("public", key, f"s{i}"),
                             f"routing key {key!r}: Subscribed, echoed exactly")
        for i, key in enumerate(FORGERIES):
            r = publish(PORT, "public", key, "Inj", {"i": i, "k": key})
            T.eq(r.status, 200, f"POST /publish to routing key {key!r} -> 200")
            await sub.expect(delivered("Inj", {"i": i, "k": key}, "public", key),
                             f"the event for {key!r} arrives exactly")
        await sub.send("ListSubscriptions", tag="l")
        got = json.loads(await sub.recv())
        T.eq(sorted(got["payload"]["subscriptions"]["public"]), sorted(FORGERIES),
             "ListSubscriptions lists every key exactly")
        await sub.send("Unsubscribe", {"exchange": "public"}, "u")
        for _ in FORGERIES:
            await sub.recv()
        lines = done("injection through routing keys")
        T.check(any(b"FORGED-1" in ln for ln in lines),
                "the routing keys did reach the (debug) log, made safe",
                b"\n".join(lines[-10:]).decode("utf-8", "replace"))
    # Raw bytes in the HTTP head: the request line, a header, the forwarded
    # address from a trusted proxy.
    for label, req, status in (
        ("an ESC in the path", b"GET /\x1b[31mFORGED-8 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("a bare LF in the path", b"GET /a\nFORGED-9 error: x HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("a CR in a header", b"GET / HTTP/1.1\r\nHost: x\rFORGED-10\r\n\r\n", 400),
        ("percent-encoded CRLF", b"GET /%0d%0aFORGED-11%1b[0m HTTP/1.1\r\nHost: x\r\n\r\n", 404),
        ("a forwarded address with ESC", handshake_request(
            PORT, headers={"X-Forwarded-For": "x"}).replace(
                b"X-Forwarded-For: x", b"X-Forwarded-For: 10.0.0.1\x1b[2JFORGED-12"), 400),
        ("a forwarded address with a NUL", handshake_request(
            PORT, headers={"X-Forwarded-For": "x"}).replace(
                b"X-Forwarded-For: x", b"X-Forwarded-For: 10.0.0.1\x00FORGED-13"), 400),
    ):
        r = http_head(PORT, req)
        T.check(r.status == status and r.complete, f"{label}: HTTP {status}", repr(r))
    done("injection through the HTTP head")
    async with Client(PORT) as c:
        await c.ping_roundtrip("a well-behaved client is served afterwards")


@T.test
def whole_log_is_clean():
    data = open(D.log_path, "rb").read()
    lines = data.split(b"\n")
    T.check(data.endswith(b"\n") and all(LOG_LINE_RE.match(ln) for ln in lines[:-1]),
            f"the whole log ({len(lines) - 1} lines) is one well-formed line per event")
    T.check(not any(f.encode() in data for f in FORGERIES[:4]),
            "no forged string appears raw anywhere in it")


T.run()
