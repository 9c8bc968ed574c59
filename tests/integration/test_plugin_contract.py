#!/usr/bin/python3
"""
The daemon's side of the plugin contract, with test plugins whose answers
are set in the configuration (tests/plugins/): an error stops the auth chain
instead of falling through to a weaker plugin; a plugin that never answers
is timed out (AuthUnavailable) and cancelled; an invalid verdict is an
error; a plugin built for another ABI major is refused, naming both
versions.
"""
import os
import sys
import time

sys.dont_write_bytecode = True   # keep the source tree clean

from myxidtest import (PLUGIN_DIR, Client, Daemon, Suite, authenticated, error, http_request, require,
                       run_myxid, standard_exchanges)

require()
T = Suite()
TEST_PLUGINS = os.environ.get("MYXID_TEST_PLUGIN_DIR") or os.path.normpath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "plugins", ".libs"))
AUTH_TEST = os.path.join(TEST_PLUGINS, "auth_test.so")
ABI_FUTURE = os.path.join(TEST_PLUGINS, "abi_future.so")


def config(first_answer, timeout="5s"):
    """auth_test (answering first_answer) chained before auth_static."""
    return (f"auth_timeout {timeout}\n"
            f"auth {AUTH_TEST} {{\n    answer {first_answer}\n}}\n"
            "auth static {\n    tokens_file tokens\n}\n" + standard_exchanges())


CHAIN_CASES = [
    # (first plugin's answer, token, expected reply, what)
    ("next", "demo-alice", authenticated("1", 1), "NEXT passes the token to auth_static"),
    ("error", "demo-alice", error("AuthUnavailable", 1),
     "ERROR answers AuthUnavailable; the chain does not go on"),
    ("deny", "demo-alice", error("InvalidAuthentication", 1), "DENY from the first plugin is final"),
    ("allow", "zz", authenticated("t-zz", 1), "ALLOW sets the plugin's user id"),
]


@T.test
async def chain_answers():
    for answer, token, want, what in CHAIN_CASES:
        d = Daemon(config(answer), name=f"chain-{answer}")
        async with Client(d.port) as c:
            await c.send("Authenticate", {"session_id": token}, 1)
            await c.expect(want, what)
            await c.ping_roundtrip(f"{answer}: the socket stays usable afterwards")
        d.stop()


@T.test
async def healthz_reports_failing_plugins():
    d = Daemon(config("error"), name="health")
    r = http_request(d.port, "GET", "/healthz")
    T.eq(r.json()["plugins"], {}, "no plugin has answered yet: none listed")
    async with Client(d.port) as c:
        await c.send("Authenticate", {"session_id": "demo-alice"}, 1)
        await c.expect(error("AuthUnavailable", 1), "setup: the plugin errors")
    r = http_request(d.port, "GET", "/healthz")
    T.eq((r.status, r.json()["status"], r.json()["plugins"]),
         (200, "degraded", {"auth_test": "failing"}),
         "/healthz: degraded (200: open sockets still get events), the plugin failing")
    d.stop()


@T.test
async def invalid_verdict_is_an_error():
    d = Daemon(config("invalid"), name="invalid")
    async with Client(d.port) as c:
        await c.send("Authenticate", {"session_id": "demo-alice"}, "iv")
        await c.expect(error("AuthUnavailable", "iv"), "an unknown verdict counts as an error")
    d.stop()
    T.check("invalid verdict" in d.read_log(), "the bad verdict is logged", d.read_log())


@T.test
async def silent_plugin_times_out_and_is_cancelled():
    d = Daemon(config("never", timeout="300ms"), name="never")
    async with Client(d.port) as c:
        t0 = time.monotonic()
        await c.send("Authenticate", {"session_id": "demo-alice"}, "slow")
        await c.send("Ping", tag="queued")
        await c.expect(error("AuthUnavailable", "slow"),
                       "no answer within auth_timeout -> AuthUnavailable")
        took = time.monotonic() - t0
        T.check(0.25 <= took < 2.0, "answered after about auth_timeout", f"{took:.3f}s")
        await c.expect_pong("queued", "the action queued behind it runs afterwards")
    # A client that leaves while its request is pending: cancel, no answer.
    c = Client(d.port)
    await c.connect()
    await c.send("Authenticate", {"session_id": "demo-bob"}, "gone")
    c.ws.transport.abort()
    time_limit = time.monotonic() + 3
    while time.monotonic() < time_limit and d.read_log().count("request cancelled") < 2:
        time.sleep(0.05)
    d.stop()
    log = d.read_log()
    T.eq(log.count("request cancelled"), 2,
         "the plugin is told to cancel: once on timeout, once on disconnect")
    T.check("no answer within 300 ms" in log, "the timeout is logged", log)


@T.test
def abi_major_mismatch_is_refused():
    dirpath = T.mkdtemp()
    conf = os.path.join(dirpath, "myxid.conf")
    with open(conf, "w") as f:
        f.write("listen 127.0.0.1:1\n"
                f"auth {ABI_FUTURE} {{\n}}\n" + standard_exchanges())
    rc, out, err = run_myxid(["-t", "-c", conf, "-P", PLUGIN_DIR])
    T.eq(rc, 1, "myxid -t refuses a plugin built for another ABI major")
    T.check(f"{conf}:2:" in err, "the message names the config line", err)
    T.check("built for plugin ABI 2.0, but this myxid provides 1." in err,
            "the message names both ABI versions", err)


T.run()
