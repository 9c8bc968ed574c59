#!/usr/bin/python3
"""
Plugins that fail to load or fail their init, at start and on reload:
a missing .so, a file that is no shared object, a shared object without
the plugin entry point, a plugin built for another ABI major, auth_static
whose tokens_file is a directory or holds a line without a user id,
pgsql with an option it does not know, and a policy plugin that cannot
be loaded. At start the daemon exits 1 with exactly one line on stderr,
"myxid: FILE:LINE: problem", and never listens (it
refuses rather than run with weaker auth). On SIGHUP it logs one
"reload failed" line with the same reason and keeps running the old
configuration: the same tokens still let the same users in.

test_cli.py plugins_that_refuse covers "myxid -t" for a missing plugin
name, a missing tokens_file (also at start), an unknown option of the
example plugin and a policy plugin used for auth; test_plugin_contract.py
abi_major_mismatch_is_refused covers "-t" with the ABI major mismatch;
test_reload.py covers a reload with a bad file or tokens file. This file
adds the kinds of broken .so, the exact one-line error at real start,
and every case again on reload.
"""
import os
import sys

sys.dont_write_bytecode = True   # keep the source tree clean

from myxidtest import (PLUGIN_DIR, Client, Daemon, Suite, authenticated,
                       free_port, hup_and_wait, port_open, require, run_myxid,
                       standard_exchanges)
from hostile import LOG_LINE_RE

require()
T = Suite()
TEST_PLUGINS = os.environ.get("MYXID_TEST_PLUGIN_DIR") or os.path.normpath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "plugins", ".libs"))
ABI_FUTURE = os.path.join(TEST_PLUGINS, "abi_future.so")
SYSTEM_SO = next((p for p in ("/lib/x86_64-linux-gnu/libz.so.1", "/usr/lib/x86_64-linux-gnu/libz.so.1",
                              "/lib/aarch64-linux-gnu/libz.so.1", "/lib64/libz.so.1",
                              "/usr/lib/libz.so.1") if os.path.isfile(p)), None)
WORK = T.mkdtemp()
JUNK_SO = os.path.join(WORK, "junk.so")
with open(JUNK_SO, "w") as f:
    f.write("this is not an ELF file\n")
TOKENS_DIR = os.path.join(WORK, "tokens.d")
os.mkdir(TOKENS_DIR)
with open(os.path.join(WORK, "tokens"), "w") as f:
    f.write("demo-alice 1\n")
BAD_TOKENS = os.path.join(WORK, "bad-tokens")
with open(BAD_TOKENS, "w") as f:
    f.write("demo-alice 1\ndemo-eve\n")

GOOD_AUTH = "auth static {\n    tokens_file tokens\n}\n"

# (label, configuration body after the listen line, line of the fault, words in the message)
CASES = [
    ("a missing .so", "auth /nonexistent/myxid/auth_gone.so {\n}\n", 2, ["auth_gone.so"]),
    ("a file that is no shared object", f"auth {JUNK_SO} {{\n}}\n", 2, ["junk.so"]),
    ("auth_static whose tokens_file is a directory",
     f"auth static {{\n    tokens_file {TOKENS_DIR}\n}}\n", 2, ["tokens.d"]),
    ("auth_static with a token line without a user id",
     f"auth static {{\n    tokens_file {BAD_TOKENS}\n}}\n", 2, ["bad-tokens"]),
    ("a policy plugin that cannot be loaded",
     GOOD_AUTH + "exchange lost {\n    policy /nonexistent/myxid/policy_gone.so {\n    }\n}\n",
     6, ["policy_gone.so"]),
]
if SYSTEM_SO:
    CASES.append(("a shared object without the plugin entry point",
                  f"auth {SYSTEM_SO} {{\n}}\n", 2, [os.path.basename(SYSTEM_SO)]))
if os.path.isfile(ABI_FUTURE):
    CASES.append(("a plugin built for ABI 2", f"auth {ABI_FUTURE} {{\n}}\n", 2,
                  ["built for plugin ABI 2.0"]))
if os.path.isfile(os.path.join(PLUGIN_DIR, "pgsql.so")):
    CASES.append(("pgsql with an unknown option",
                  'auth pgsql {\n    conninfo "hostaddr=127.0.0.1 port=1 dbname=x"\n'
                  "    colour blue\n}\n", 4, ["colour"]))
missing = [what for what, ok in (("abi_future.so", os.path.isfile(ABI_FUTURE)),
                                 ("a system libz.so.1", SYSTEM_SO),
                                 ("pgsql.so", os.path.isfile(os.path.join(PLUGIN_DIR, "pgsql.so"))))
           if not ok]
if missing:
    print(f"# cases not run (missing here): {', '.join(missing)}", flush=True)


@T.test(timeout=60)
def refused_at_start():
    for label, body, line, words in CASES:
        port = free_port()
        path = os.path.join(WORK, f"start-{CASES.index((label, body, line, words))}.conf")
        with open(path, "w") as f:
            f.write(f"listen 127.0.0.1:{port}\n" + body + standard_exchanges())
        rc, out, err = run_myxid(["-c", path, "-P", PLUGIN_DIR], timeout=15)
        T.eq(rc, 1, f"{label}: myxid exits 1 at start")
        # Plugins loaded before the faulty one may log (well-formed lines,
        # below error); the failure itself is one "myxid: ..." line.
        logged = [ln for ln in err.splitlines() if LOG_LINE_RE.match(ln.encode())]
        lines = [ln for ln in err.splitlines() if ln not in logged]
        T.check(len(lines) == 1 and not any(" error: " in ln for ln in logged),
                f"{label}: stderr has exactly one error line", err)
        T.check(len(lines) == 1 and lines[0].startswith(f"myxid: {path}:{line}: ") and
                all(w in lines[0] for w in words),
                f"{label}: \"myxid: {os.path.basename(path)}:{line}: ...\" naming "
                f"{', '.join(words)}", err)
        T.check("ready" not in err and not port_open(port),
                f"{label}: it never became ready nor listened", err)


@T.test(timeout=90)
async def refused_on_reload():
    d = Daemon(f"{GOOD_AUTH}{standard_exchanges()}", name="reload")
    good = open(d.conf_path).read()
    listen = good.splitlines()[0] + "\n"
    async with Client(d.port, label="kept") as kept:
        await kept.authenticate("demo-alice")
        for n, (label, body, line, words) in enumerate(CASES):
            with open(d.conf_path, "w") as f:
                f.write(listen + body + standard_exchanges())
            T.check(await hup_and_wait(d, "reload failed", n),
                    f"{label}: SIGHUP -> \"reload failed\" logged", d.read_log()[-1500:])
            failed = [ln for ln in d.read_log().splitlines() if "reload failed" in ln]
            T.check(len(failed) == n + 1 and f"{d.conf_path}:{line}:" in failed[-1] and
                    all(w in failed[-1] for w in words),
                    f"{label}: the one line says where and why", failed[-1:])
            T.check(d.alive(), f"{label}: the daemon keeps running")
            async with Client(d.port) as c:
                await c.send("Authenticate", {"session_id": "demo-bob"}, "a")
                await c.expect(authenticated("2", "a"),
                               f"{label}: the old tokens still let the old users in")
            await kept.ping_roundtrip(f"{label}: the socket opened before is still up")
        with open(d.conf_path, "w") as f:
            f.write(good)
        T.check(await hup_and_wait(d, "configuration reloaded", 0),
                "the good file again: SIGHUP reloads")
    log = d.read_log()
    T.check(all(LOG_LINE_RE.match(ln.encode()) for ln in log.splitlines()),
            "the log stays one well-formed line per event", log[-2000:])
    d.stop()


T.run()
