#!/usr/bin/python3
"""
The Server-Sent Events transport (GET /events): curl receives the stream
(Welcome, Authenticated, Subscribed, published events: event: and data:
lines, the data byte for byte the WebSocket JSON) with the headers a
reverse proxy needs; refusals get their HTTP status and a JSON body (401
token, 403 subscription, 400 query, 406 Accept, 404 off, 503 limits);
keepalive comments; the id line and Last-Event-ID (header, or
last_event_id for a first request) resume numbered lines exactly once
across cuts; an unknown epoch is answered recovered:false; a client that
stops reading is disconnected while the others get everything; 1,000
streams at once; the metrics count them.
"""
import asyncio
import json
import socket
import subprocess
import sys
import threading
import time
from urllib.parse import quote

sys.dont_write_bytecode = True   # keep the source tree clean

from myxidtest import (PUBLISH_KEY, WRAPPER, Daemon, Suite, http_request, publish, require,
                       scrape)

require()
T = Suite()

CONF = f"""\
publish_key {PUBLISH_KEY}
sse_keepalive 300ms
max_output_buffer 64k
allow_origin http://app.example
auth static {{
    tokens_file tokens
}}
exchange deployment {{
    history {{
        events 1000
    }}
    policy static {{
        allow attribute deployments
    }}
}}
exchange public {{
    policy static {{
        allow public
    }}
}}
exchange log {{
    history {{
        events 1000
    }}
    policy static {{
        allow authenticated
    }}
}}
"""

D = Daemon(CONF)
# Under valgrind (scripts/valgrind.sh) the crowd is smaller: the same paths,
# in the time memcheck allows.
CROWD = 200 if WRAPPER else 1000


def path(token="demo-alice", subs=("deployment:d1",), extra=""):
    q = []
    if token is not None:
        q.append(f"token={quote(token)}")
    q += [f"subscribe={quote(s)}" for s in subs]
    return "/events?" + "&".join(q) + extra


class Stream:
    """A raw SSE client: the response head, then one message at a time."""

    def __init__(self, reader, writer, status, headers):
        self.r, self.w, self.status, self.headers = reader, writer, status, headers
        self.comments = 0
        self.last_id = None

    @classmethod
    async def open(cls, port, target, headers=None, accept="text/event-stream"):
        r, w = await asyncio.open_connection("127.0.0.1", port)
        hdrs = {"Host": f"127.0.0.1:{port}", "Accept": accept}
        hdrs.update(headers or {})
        w.write((f"GET {target} HTTP/1.1\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in hdrs.items() if v is not None) + "\r\n").encode())
        head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 10)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        h = {k.strip().lower(): v.strip() for k, _, v in
             (ln.partition(":") for ln in lines[1:] if ln)}
        return cls(r, w, status, h)

    async def body(self):
        return await asyncio.wait_for(self.r.read(), 10)

    async def next(self, timeout=5.0):
        """The next message with data: {"id", "event", "data"} (comments
        are counted; retry: skipped)."""
        while True:
            block = await asyncio.wait_for(self.r.readuntil(b"\n\n"), timeout)
            msg = {}
            for line in block.decode().split("\n"):
                if line.startswith(":"):
                    self.comments += 1
                elif line:
                    k, _, v = line.partition(": ")
                    msg[k] = v
            if "id" in msg:
                self.last_id = msg["id"]
            if "data" in msg:
                msg["json"] = json.loads(msg["data"])
                return msg

    async def until(self, event, timeout=5.0):
        while True:
            m = await self.next(timeout)
            if m.get("event") == event:
                return m

    def close(self):
        self.w.close()


def line(n, key="d1", exchange="deployment"):
    r = publish(D.port, exchange, key, "Line", {"n": n})
    assert r.status == 200, r


@T.test
def curl_gets_the_stream():
    p = subprocess.Popen(["curl", "-sN", "-m", "3", "-H", "Accept: text/event-stream",
                          f"http://127.0.0.1:{D.port}{path()}"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(0.6)
    line(1)
    out, _ = p.communicate(timeout=10)
    text = out.decode()
    blocks = [b for b in text.split("\n\n") if b and not b.startswith(":")]
    T.eq(blocks[0], "retry: 2000", "the stream starts with a retry time")
    events = [dict(ln.split(": ", 1) for ln in b.split("\n")) for b in blocks[1:]]
    T.eq([e.get("event") for e in events], ["Welcome", "Authenticated", "Subscribed", "Line"],
         "curl: Welcome, Authenticated, Subscribed, then the published Line")
    T.eq(events[1]["data"], '{"event":"Authenticated","tag":null,"payload":{"user_id":"1"}}',
         "Authenticated's data is the WebSocket reply, byte for byte")
    sub = json.loads(events[2]["data"])["payload"]
    T.eq(events[3]["data"], json.dumps({"event": "Line", "payload": {"n": 1},
                                         "mq": {"e": "deployment", "rk": "d1", "o": sub["offset"] + 1}},
                                        separators=(",", ":")),
         "the Line's data is the WebSocket frame's JSON")
    T.eq(events[3]["id"], f"{sub['epoch']}/{sub['offset'] + 1}", "its id is EPOCH/POSITION")
    T.check(": keepalive" in text, "keepalive comments (sse_keepalive 300ms)")


@T.test
async def headers_for_proxies():
    s = await Stream.open(D.port, path(), {"Origin": "http://app.example"})
    T.eq(s.status, 200, "200 once authenticated and subscribed")
    T.eq(s.headers.get("content-type"), "text/event-stream; charset=utf-8", "Content-Type")
    T.eq(s.headers.get("x-accel-buffering"), "no", "X-Accel-Buffering: no (nginx must not buffer)")
    T.eq(s.headers.get("cache-control"), "no-cache, no-store", "Cache-Control")
    T.eq(s.headers.get("connection"), "close", "close-delimited")
    T.eq(s.headers.get("access-control-allow-origin"), "http://app.example",
         "an allowed Origin may read the stream (CORS)")
    s.close()
    s = await Stream.open(D.port, path(), {"Origin": "http://evil.example"})
    T.eq(s.status, 403, "another Origin is refused, as for WebSocket")
    s.close()


async def refused(target, want_status, want_body, what, headers=None, accept="text/event-stream"):
    await refused_at(D.port, target, want_status, want_body, what, headers, accept)


async def refused_at(port, target, want_status, want_body, what, headers=None,
                     accept="text/event-stream"):
    s = await Stream.open(port, target, headers, accept)
    body = await s.body()
    T.eq(s.status, want_status, f"{what}: HTTP {want_status}")
    got = json.loads(body)
    T.eq({k: got.get(k) for k in want_body}, want_body, f"{what}: JSON body")
    s.close()


@T.test
async def refusals_have_a_status_and_a_body():
    await refused(path(token="nope"), 401, {"error": "InvalidAuthentication"}, "a bad token")
    await refused(path(subs=("deployment:d3",)), 403,
                  {"error": "SubscriptionDenied", "exchange": "deployment", "routing_key": "d3"},
                  "a denied subscription")
    await refused(path(subs=("deployment:d1", "deployment:d3")), 403,
                  {"error": "SubscriptionDenied", "routing_key": "d3"},
                  "one denied among several")
    await refused(path(subs=("nope:d1",)), 400, {"error": "InvalidExchange"}, "an unknown exchange")
    await refused(path(subs=("deployment",)), 400, {"error": "BadRequest"}, "subscribe without a key")
    await refused("/events?token=%zz", 400, {"error": "BadRequest"}, "bad percent-encoding")
    await refused(path(extra="&last_event_id=a/1,b/2"), 400, {"error": "BadRequest"},
                  "an event id with more items than subscriptions")
    await refused(path(), 400, {"error": "BadRequest"}, "a Last-Event-ID that does not parse",
                  {"Last-Event-ID": "no-slash"})
    await refused(path(extra="&history=x"), 400, {"error": "BadRequest"}, "a bad history")
    await refused(path(), 406, {"error": "NotAcceptable"}, "Accept: text/html",
                  accept="text/html")
    r = http_request(D.port, "POST", path(), body="")
    T.eq(r.status, 405, "POST on /events: 405")


@T.test
async def anonymous_stream_of_a_public_exchange():
    s = await Stream.open(D.port, path(token=None, subs=("public:news",)))
    T.eq(s.status, 200, "no token: a public exchange is streamed")
    T.eq((await s.until("Subscribed"))["json"]["payload"]["routing_key"], "news", "Subscribed")
    publish(D.port, "public", "news", "Headline", {"t": "x"})
    m = await s.until("Headline")
    T.eq(m["json"]["payload"], {"t": "x"}, "an event of a public exchange")
    T.eq(s.last_id, None, "no id line without history")
    s.close()


@T.test(timeout=60)
async def last_event_id_resumes_exactly_once():
    await asyncio.get_running_loop().run_in_executor(None, line, 0, "r", "log")
    stop = threading.Event()

    def publisher():
        for n in range(1, 201):
            line(n, "r", "log")
            time.sleep(0.004)
        stop.set()
    got, recovered = [], []

    async def read(s, upto):
        while True:
            m = await s.next()
            if m["event"] == "Subscribed":
                recovered.append(m["json"]["payload"].get("recovered"))
            elif m["event"] == "Line":
                got.append(m["json"]["payload"]["n"])
                if m["json"]["payload"]["n"] >= upto:
                    return

    s = await Stream.open(D.port, path(subs=("log:r",)))
    await s.until("Subscribed")
    t = threading.Thread(target=publisher)
    t.start()
    await read(s, 60)
    last = s.last_id
    s.close()                                          # cut: lines go on meanwhile
    await asyncio.sleep(0.1)
    s = await Stream.open(D.port, path(subs=("log:r",)), {"Last-Event-ID": last})
    await read(s, 130)
    last = s.last_id
    s.close()
    await asyncio.sleep(0.1)
    s = await Stream.open(D.port, path(subs=("log:r",), extra=f"&last_event_id={quote(last)}"))
    await read(s, 200)
    t.join()
    s.close()
    T.check(got == list(range(1, 201)), "lines 1..200 exactly once, in order, over two cuts",
            f"{len(got)} lines; first wrong at {next((i for i, n in enumerate(got) if n != i + 1), None)}")
    T.eq(recovered, [True, True], "both resumes answered recovered: true (header, then query)")


@T.test
async def an_unknown_epoch_is_not_recovered():
    s = await Stream.open(D.port, path(), {"Last-Event-ID": "deadbeef/3"})
    T.eq(s.status, 200, "a well-formed id of another epoch is accepted")
    sub = (await s.until("Subscribed"))["json"]["payload"]
    T.eq(sub.get("recovered"), False, "and answered recovered: false (the page must refetch)")
    s.close()


@T.test(timeout=60)
async def a_client_that_stops_reading_is_cut_alone():
    before = scrape(D.port)[1].get("myxid_slow_socket_closes_total", 0)
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect(("127.0.0.1", D.port))
    slow.sendall(f"GET {path(subs=('log:big',))} HTTP/1.1\r\nHost: x\r\n"
                 "Accept: text/event-stream\r\n\r\n".encode())
    fast = await Stream.open(D.port, path(subs=("log:big",)))
    await fast.until("Subscribed")
    await asyncio.sleep(0.3)
    # More than the kernel's socket buffers take on loopback (they grow to
    # a few MiB), so the slow socket's backlog reaches myxid's own buffer.
    text = "x" * 16000

    def publisher():
        for n in range(1, 601):
            publish(D.port, "log", "big", "Line", {"n": n, "text": text})
    pub = asyncio.get_running_loop().run_in_executor(None, publisher)
    got = []
    while len(got) < 600:
        m = await fast.next(10)
        if m["event"] == "Line":
            got.append(m["json"]["payload"]["n"])
    await pub
    T.eq(got, list(range(1, 601)), "the reading client gets all 600 large events")
    after = scrape(D.port)[1].get("myxid_slow_socket_closes_total", 0)
    T.check(after >= before + 1, "the one that stopped reading was closed as slow (max_output_buffer)",
            f"{before} -> {after}")
    slow.close()
    fast.close()


@T.test(timeout=120)
async def a_thousand_streams():
    n = CROWD
    streams = await asyncio.gather(*(Stream.open(D.port, path(subs=("log:many",)))
                                     for _ in range(n)))
    await asyncio.gather(*(s.until("Subscribed", 20) for s in streams))
    T.eq(sum(s.status == 200 for s in streams), n, f"{n} streams answered 200")
    T.check(scrape(D.port)[1].get("myxid_sse_streams", 0) >= n, "myxid_sse_streams counts them")
    for k in range(1, 6):
        line(k, "many", "log")

    async def five(s):
        out = []
        while len(out) < 5:
            m = await s.next(20)
            if m["event"] == "Line":
                out.append(m["json"]["payload"]["n"])
        return out
    got = await asyncio.gather(*(five(s) for s in streams))
    T.eq(sum(g == [1, 2, 3, 4, 5] for g in got), n, f"each of the {n} streams got lines 1..5 once, in order")
    for s in streams:
        s.close()
    await asyncio.sleep(0.5)
    T.eq(scrape(D.port)[1].get("myxid_sse_streams"), 0.0, "closed streams leave the gauge")


@T.test
async def replays_that_do_not_fit_are_refused():
    big = "y" * 1000
    for k in ("h1", "h2", "h3"):
        for n in range(40):
            publish(D.port, "log", k, "Line", {"n": n, "text": big})
    target = path(subs=("log:h1", "log:h2", "log:h3"), extra="&history=40,40,40")
    await refused(target, 503, {"error": "TooMuchHistory"},
                  "three replays of ~32 KiB each, over max_output_buffer 64k")
    s = await Stream.open(D.port, path(subs=("log:h1",), extra="&history=5"))
    T.eq(s.status, 200, "one small replay still streams")
    got = []
    while len(got) < 5:
        m = await s.next()
        if m["event"] == "Line":
            got.append(m["json"]["payload"]["n"])
    T.eq(got, [35, 36, 37, 38, 39], "history=5: the last 5 lines, oldest first")
    s.close()


@T.test
async def the_token_may_come_from_a_cookie():
    d = Daemon(CONF + "sse_token_cookie app_session\n", name="cookie")
    s = await Stream.open(d.port, path(token=None), {"Cookie": "theme=dark; app_session=demo-alice"})
    T.eq(s.status, 200, "sse_token_cookie: the session cookie authenticates the stream")
    T.eq((await s.until("Authenticated"))["json"]["payload"], {"user_id": "1"}, "as demo-alice")
    s.close()
    s = await Stream.open(d.port, path(token="demo-bob", subs=("deployment:d3",)),
                          {"Cookie": "app_session=demo-alice"})
    T.eq((await s.until("Authenticated"))["json"]["payload"], {"user_id": "2"},
         "a token in the query wins over the cookie")
    s.close()
    await refused_at(d.port, path(token=None), 401, {"error": "AuthRequired"},
                     "no token and no cookie: a subscription that needs a user")
    d.stop()


@T.test
async def off_other_path_and_limits():
    d = Daemon(CONF + "sse off\n", name="off")
    s = await Stream.open(d.port, path())
    T.eq(s.status, 404, "sse off: /events is 404")
    s.close()
    d.stop()
    d = Daemon(CONF + "sse_path /push/stream\nmax_connections 2\n", name="path")
    s = await Stream.open(d.port, path().replace("/events", "/push/stream"))
    T.eq(s.status, 200, "sse_path /push/stream streams there")
    s2 = await Stream.open(d.port, path().replace("/events", "/push/stream"))
    s3 = await Stream.open(d.port, path().replace("/events", "/push/stream"))
    T.eq((s2.status, s3.status), (200, 503), "max_connections 2: the third gets 503")
    T.eq(s3.headers.get("retry-after"), "5", "with Retry-After")
    _, m = scrape(d.port)
    T.eq((m.get("myxid_sse_streams_total"), m.get("myxid_sse_refused_total")), (2.0, 1.0),
         "myxid_sse_streams_total and myxid_sse_refused_total")
    for x in (s, s2, s3):
        x.close()
    d.stop()


if __name__ == "__main__":
    T.run()
