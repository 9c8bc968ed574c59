#!/usr/bin/python3
"""
SIGHUP reloads the configuration file, the token files and the plugin
options while every socket stays up; a reload that fails (bad file, bad
tokens) keeps the running configuration, says why, and never changes who
is let in; a plugin request in flight across a reload still gets its
answer.
"""
import asyncio
import sys

sys.dont_write_bytecode = True   # keep the source tree clean

from myxidtest import (Client, Daemon, Suite, auth_reply, authenticated, delivered,
                       error, hup_and_wait, publish, require, standard_config,
                       subscribed, write_file)

require(example_plugin=True)
T = Suite()


@T.test
async def reload_tokens_keeps_sockets():
    d = Daemon(standard_config(example=True), name="reload")
    conf = open(d.conf_path).read()
    async with Client(d.port, label="kept") as kept:
        await kept.authenticate("demo-alice")
        await kept.send("Subscribe", {"exchange": "deployment", "routing_key": "d1"}, "s")
        await kept.expect(subscribed("deployment", "d1", "s"), "setup: alice subscribes to d1")

        write_file(d, "tokens", "demo-dave 4 deployments=d1\n")
        T.check(await hup_and_wait(d, "configuration reloaded", 0),
                "SIGHUP reloads (logged)", d.read_log())
        T.eq(await auth_reply(d.port, "demo-alice"), compact_error("InvalidAuthentication"),
             "a token removed from the file no longer authenticates")
        T.eq(await auth_reply(d.port, "demo-dave"), compact_auth("4"),
             "a token added to the file authenticates")
        await kept.ping_roundtrip("the socket opened before the reload is still up")
        r = publish(d.port, "deployment", "d1", "After", {"n": 1})
        T.eq(r.status, 200, "publish after the reload")
        await kept.expect(delivered("After", {"n": 1}, "deployment", "d1"),
                          "its subscription survived the reload")

        # A broken configuration file: nothing changes.
        with open(d.conf_path, "w") as f:
            f.write(conf + "frobnicate yes\n")
        T.check(await hup_and_wait(d, "reload failed", 0), "a bad file: reload fails (logged)")
        line = len(conf.splitlines()) + 1
        T.check(f"{d.conf_path}:{line}: unknown directive 'frobnicate'" in d.read_log(),
                "the log says where and why", d.read_log()[-2000:])
        T.eq(await auth_reply(d.port, "demo-dave"), compact_auth("4"),
             "the running configuration still applies")

        # A broken tokens file, e.g. emptied of user ids: nothing changes.
        with open(d.conf_path, "w") as f:
            f.write(conf)
        write_file(d, "tokens", "demo-eve\n")
        T.check(await hup_and_wait(d, "reload failed", 1), "a bad tokens file: reload fails")
        T.eq(await auth_reply(d.port, "demo-dave"), compact_auth("4"),
             "the tokens loaded before still apply")
        T.eq(await auth_reply(d.port, "demo-eve"), compact_error("InvalidAuthentication"),
             "the broken file let nobody new in")
        await kept.ping_roundtrip("the old socket is still up after failed reloads")
    T.check(d.alive(), "the daemon is still running")
    d.stop()


@T.test
async def request_in_flight_across_reload():
    d = Daemon(standard_config(example=True).replace("delay_ms 20", "delay_ms 300"),
               name="inflight")
    async with Client(d.port) as c:
        await c.send("Authenticate", {"session_id": "example-9"}, "slow")
        await asyncio.sleep(0.05)
        T.check(await hup_and_wait(d, "configuration reloaded", 0), "reload while pending")
        await c.expect(authenticated("9", "slow", "Example"),
                       "the pending request is still answered by its plugin")
    async with Client(d.port) as c:
        await c.send("Authenticate", {"session_id": "example-10"}, "new")
        await c.expect(authenticated("10", "new", "Example"), "the reloaded plugin answers")
    d.stop()


def compact_error(code, tag="t"):
    from myxidtest import compact
    return compact(error(code, tag))


def compact_auth(user, tag="t"):
    from myxidtest import compact
    return compact(authenticated(user, tag))


T.run()
