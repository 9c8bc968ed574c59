#!/usr/bin/python3
"""
The command line and the process: --version, --help, "myxid -t" on good and
bad configurations (FILE:LINE: messages), plugins that refuse to start,
Myxi's environment overrides (MYXI_PORT, PORT, MYXI_BIND_ADDRESS), the
bundled demo configuration end to end, and SIGTERM (clients get close 1001,
exit status 0).
"""
import asyncio
import os
import re
import signal
import sys
import time

sys.dont_write_bytecode = True   # keep the source tree clean

from myxidtest import (Client, Daemon, EXAMPLE_PLUGIN, OP_CLOSE, PLUGIN_DIR, RawWS,
                       SRCDIR, close_payload,
                       Suite, authenticated, delivered, free_port, port_open,
                       publish, require, run_myxid, standard_config, subscribed)

require(example_plugin=True)
T = Suite()
TMP = T.mkdtemp(prefix="myxidtest-cli-")


def write(name, text, tokens=True):
    path = os.path.join(TMP, name)
    with open(path, "w") as f:
        f.write(text)
    if tokens:
        with open(os.path.join(TMP, "tokens"), "w") as f:
            f.write("demo-alice 1 deployments=d1,d2\n")
    return path


def check_config(name, text, env=None):
    path = write(name, text)
    rc, out, err = run_myxid(["-t", "-c", path, "-P", PLUGIN_DIR], env=env)
    return path, rc, out + err


def expect_bad(name, text, line, words, what, env=None):
    """myxid -t exits 1 and prints PATH:LINE: and each of words."""
    path, rc, out = check_config(name, text, env)
    T.eq(rc, 1, f"{what}: myxid -t exits 1")
    where = f"{path}:{line}:" if line else f"{path}"
    T.check(where in out, f"{what}: the message names {os.path.basename(where)}",
            out.strip())
    for w in words:
        T.check(w in out, f"{what}: the message mentions {w!r}", out.strip())


MINIMAL = """\
listen 127.0.0.1:1
exchange e {
    policy static {
        allow public
    }
}
"""


@T.test
def version_and_help():
    rc, out, err = run_myxid(["--version"])
    T.check(rc == 0 and re.match(r"^myxid \d+\.\d+", out), "--version prints the version",
            (rc, out, err))
    rc2, out2, _ = run_myxid(["-V"])
    T.check(rc2 == 0 and out2 == out, "-V is the same", (rc2, out2))
    rc, out, err = run_myxid(["--help"])
    T.check(rc == 0 and "Usage" in out and "-c" in out and "-t" in out,
            "--help prints the usage and exits 0", (rc, out[:200], err))
    rc, out, err = run_myxid(["--no-such-option"])
    T.check(rc != 0 and "Usage" in err, "an unknown option fails with the usage on stderr",
            (rc, err[:200]))


@T.test
def good_configs():
    demo = os.path.join(SRCDIR, "etc", "myxid.conf")
    rc, out, err = run_myxid(["-t", "-c", demo, "-P", PLUGIN_DIR])
    T.check(rc == 0, "myxid -t accepts the bundled etc/myxid.conf", (rc, out, err))
    path, rc, out = check_config("good.conf", MINIMAL)
    T.check(rc == 0, "myxid -t accepts a minimal config", out)
    path, rc, out = check_config("standard.conf", "listen 127.0.0.1:1\n" +
                                 standard_config(example=True))
    T.check(rc == 0, "myxid -t accepts the test suite's config with the example plugin", out)
    path, rc, out = check_config("env.conf", "listen 127.0.0.1:1\npublish_key ${MYXID_TEST_KEY}\n"
                                 + MINIMAL.split("\n", 1)[1], env={"MYXID_TEST_KEY": "k"})
    T.check(rc == 0, "${NAME} is replaced by the environment variable", out)


@T.test
def bad_configs():
    expect_bad("unknown.conf", "listen 127.0.0.1:1\n# comment\nbogus_directive 1\n"
               + MINIMAL.split("\n", 1)[1], 3, ["bogus_directive"], "an unknown directive")
    expect_bad("unknown-in-block.conf", "listen 127.0.0.1:1\nexchange e {\n"
               "    policy static {\n        allow public\n    }\n    colour blue\n}\n",
               6, ["colour"], "an unknown directive inside an exchange block")
    expect_bad("nopolicy.conf", "listen 127.0.0.1:1\n\nexchange e {\n    type direct\n}\n",
               3, ["policy"], "an exchange without a policy")
    expect_bad("badsize.conf", "listen 127.0.0.1:1\nmax_message_size lots\n"
               + MINIMAL.split("\n", 1)[1], 2, ["max_message_size"], "a bad size")
    expect_bad("dup.conf", "listen 127.0.0.1:1\npublish_key a\npublish_key b\n"
               + MINIMAL.split("\n", 1)[1], 3, ["publish_key"], "a duplicate directive")
    expect_bad("unsetenv.conf", "listen 127.0.0.1:1\npublish_key ${MYXID_TEST_UNSET_VAR}\n"
               + MINIMAL.split("\n", 1)[1], 2, ["MYXID_TEST_UNSET_VAR"],
               "an unset ${NAME}")
    expect_bad("unclosed.conf", "listen 127.0.0.1:1\nexchange e {\n    policy static {\n"
               "        allow public\n    }\n", None, [], "an unclosed block")
    rc, out, err = run_myxid(["-t", "-c", os.path.join(TMP, "does-not-exist.conf"),
                              "-P", PLUGIN_DIR])
    T.check(rc == 1 and "does-not-exist.conf" in err, "a missing config file -> exit 1, named",
            (rc, err))


@T.test
def plugins_that_refuse():
    expect_bad("notokens.conf", "listen 127.0.0.1:1\nauth static {\n"
               "    tokens_file /nonexistent/myxid-tokens\n}\n" + MINIMAL.split("\n", 1)[1],
               None, ["/nonexistent/myxid-tokens"], "auth_static with a missing tokens_file")
    path, rc, out = check_config("notokens2.conf", "listen 127.0.0.1:1\nauth static {\n"
                                 "    tokens_file /nonexistent/myxid-tokens\n}\n"
                                 + MINIMAL.split("\n", 1)[1])
    T.check(f"{path}:2:" in out or f"{path}:3:" in out,
            "the tokens_file message points at the auth block or its option", out.strip())
    rc, out, err = run_myxid(["-c", path, "-P", PLUGIN_DIR])
    T.check(rc == 1 and "/nonexistent/myxid-tokens" in err,
            "myxid (not -t) refuses to start the same way", (rc, err))
    expect_bad("noplugin.conf", "listen 127.0.0.1:1\nauth nosuchplugin {\n}\n"
               + MINIMAL.split("\n", 1)[1], 2, ["nosuchplugin"], "an auth plugin that does not exist")
    expect_bad("badopt.conf", f"listen 127.0.0.1:1\nauth {EXAMPLE_PLUGIN} {{\n"
               f"    delay_ms 20\n    colour blue\n}}\n" + MINIMAL.split("\n", 1)[1],
               4, ["colour"], "the example plugin refusing an unknown option")
    expect_bad("badrule.conf", "listen 127.0.0.1:1\nexchange e {\n    policy static {\n"
               "        allow everybody please\n    }\n}\n", 4, [],
               "policy_static refusing a bad rule")
    expect_bad("policyauth.conf", "listen 127.0.0.1:1\nauth policy_static {\n}\n"
               + MINIMAL.split("\n", 1)[1], 2, [], "a policy plugin used as an auth plugin")


@T.test(timeout=30)
async def environment_overrides():
    p2 = free_port()
    d = Daemon(env={"MYXI_PORT": str(p2)}, start=False, name="myxid (MYXI_PORT)")
    d.start(wait_port=p2)
    T.check(port_open(p2), "MYXI_PORT overrides the listen port")
    T.check(not port_open(d.port), "the configured port is not used then")
    async with Client(p2) as c:
        await c.ping_roundtrip("a client on the MYXI_PORT port")
    d.stop()

    p3, p4 = free_port(), free_port()
    d = Daemon(env={"PORT": str(p3)}, start=False, name="myxid (PORT)")
    d.start(wait_port=p3)
    T.check(port_open(p3), "PORT overrides the listen port")
    d.stop()
    d = Daemon(env={"PORT": str(p3), "MYXI_PORT": str(p4)}, start=False,
               name="myxid (MYXI_PORT and PORT)")
    d.start(wait_port=p4)
    T.check(port_open(p4) and not port_open(p3), "MYXI_PORT wins over PORT")
    d.stop()
    d = Daemon(env={"MYXI_BIND_ADDRESS": "127.0.0.2"}, start=False,
               name="myxid (MYXI_BIND_ADDRESS)")
    d.start(wait_host="127.0.0.2")
    T.check(port_open(d.port, "127.0.0.2"), "MYXI_BIND_ADDRESS overrides the address")
    T.check(not port_open(d.port, "127.0.0.1"), "and the configured address is not used")
    d.stop()
    rc, out, err = run_myxid(["-t", "-c", write("p.conf", MINIMAL), "-P", PLUGIN_DIR],
                             env={"MYXI_PORT": "notaport"})
    T.check(rc == 1 and "MYXI_PORT" in err, "an invalid MYXI_PORT is refused", (rc, err))


@T.test
def port_in_use():
    d = Daemon(name="myxid (holding the port)")
    other = Daemon(start=False, name="myxid (same port)")
    with open(other.conf_path, "w") as f:
        f.write(f"listen 127.0.0.1:{d.port}\n" + standard_config())
    rc, out, err = run_myxid(["-c", other.conf_path, "-P", PLUGIN_DIR])
    T.check(rc == 1 and str(d.port) in err, "a port already in use -> exit 1 naming it",
            (rc, err))
    d.stop()
    other.stop()      # never started: only leaves the suite's list


@T.test(timeout=30)
async def demo_config_end_to_end():
    port = free_port()
    d = Daemon(start=False, env={"MYXI_PORT": str(port)}, name="myxid (etc/myxid.conf)")
    d.conf_path = os.path.join(SRCDIR, "etc", "myxid.conf")
    d.start(wait_port=port)
    async with Client(port) as bob:
        await bob.send("Authenticate", {"session_id": "demo-bob"}, 1)
        await bob.expect(authenticated("2", 1), "demo config: demo-bob is user 2")
        await bob.send("Subscribe", {"exchange": "deployment", "routing_key": "d3"}, 2)
        got = await bob.recv_json()
        epoch = got.get("payload", {}).get("epoch", "")
        T.eq(got, {"event": "Subscribed", "tag": 2,
                   "payload": {"exchange": "deployment", "routing_key": "d3",
                               "epoch": epoch, "offset": 0}},
             "demo config: bob may read d3 (history: epoch and offset)")
        await bob.send("Subscribe", {"exchange": "deployment", "routing_key": "d1"}, 3)
        await bob.expect({"event": "Error", "tag": 3, "payload": {
            "error": "SubscriptionDenied", "exchange": "deployment", "routing_key": "d1"}},
            "demo config: bob may not read d1")
        resp = await asyncio.get_running_loop().run_in_executor(
            None, lambda: publish(port, "deployment", "d3", "StatusChanged", {"status": "ok"}))
        T.eq(resp.status, 200, "demo config: publish with demo-publish-key")
        want = delivered("StatusChanged", {"status": "ok"}, "deployment", "d3")
        want["mq"]["o"] = 1
        await bob.expect(want, "demo config: bob receives the event, at position 1")
    d.stop()


@T.test(timeout=30)
async def sigterm_closes_clients_with_1001():
    d = Daemon(name="myxid (SIGTERM)")
    loop = asyncio.get_running_loop()
    clients = [Client(d.port, label=f"c{i}") for i in range(3)]
    for c in clients:
        await c.connect()
    await clients[0].authenticate("demo-alice")
    raw = await loop.run_in_executor(None, RawWS, d.port)
    t0 = time.monotonic()
    d.proc.send_signal(signal.SIGTERM)
    f, before = await loop.run_in_executor(None, raw.read_close)
    T.eq(f.close_code if f else None, 1001, "a raw client receives close 1001")
    raw.send_frame(OP_CLOSE, close_payload(1001))
    raw.close()
    for c in clients:
        try:
            await asyncio.wait_for(c.ws.wait_closed(), 5)
        except asyncio.TimeoutError:
            pass
        T.eq(c.ws.close_code, 1001, f"websockets client {c.label} sees close code 1001")
    await loop.run_in_executor(None, lambda: d.proc.wait(8))
    T.check(time.monotonic() - t0 < 5, "the daemon exits promptly once clients have closed",
            f"{time.monotonic() - t0:.2f}s")
    d.stop()      # checks the exit status is 0
    T.check(not port_open(d.port), "nothing listens after the exit")


@T.test(timeout=20)
def sigint_and_sighup():
    d = Daemon(name="myxid (SIGHUP then SIGINT)")
    d.proc.send_signal(signal.SIGHUP)
    time.sleep(0.3)
    T.check(d.alive() and port_open(d.port), "SIGHUP does not stop the daemon")
    d.stop(sig=signal.SIGINT)


if __name__ == "__main__":
    T.run()
