"""
myxidtest: a small harness for myxid's integration tests.

Each test file is one program that automake runs (see Makefile.am, TESTS):
it starts the real daemon built in this tree on a free loopback port, drives
it with real clients (Debian's Python "websockets" and raw sockets for what
no well-behaved client sends), prints one line per check and a closing
"N passed, N failed" line, and exits 0 (all passed), 1 (a failure) or 77
(a prerequisite is missing and CI is not set; under CI that is a failure).

The environment comes from Makefile.am (AM_TESTS_ENVIRONMENT):
  MYXID_BIN             the daemon, server/myxid
  MYXID_PLUGIN_DIR      plugins/.libs (passed as "myxid -P DIR")
  MYXID_EXAMPLE_PLUGIN  plugins/example/.libs/auth_example.so
  MYXID_SRCDIR          the source tree (for etc/myxid.conf)
  MYXID_WRAPPER         optional: a command prefixed to every daemon run,
                        e.g. "valgrind --leak-check=full --error-exitcode=99"
                        (scripts/valgrind.sh); valgrind's report goes to a
                        file in the daemon's directory, and a daemon whose
                        run reports errors fails the test. Waits are longer.
Whatever the wrapper, a sanitizer report (AddressSanitizer, LeakSanitizer,
UBSan "runtime error:") in a daemon's stderr fails the test.
Run one file by hand from a built tree with those set, e.g.
  MYXID_BIN=$PWD/server/myxid MYXID_PLUGIN_DIR=$PWD/plugins/.libs \
  MYXID_EXAMPLE_PLUGIN=$PWD/plugins/example/.libs/auth_example.so \
  MYXID_SRCDIR=$PWD /usr/bin/python3 tests/integration/test_protocol.py
"""

import asyncio
import base64
import hashlib
import inspect
import json
import os
import re
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
SKIP = 77
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
PUBLISH_KEY = "demo-publish-key"

DEFAULT_TOKENS = """\
# token user_id [type=T] [name=value ...]
demo-alice  1  deployments=d1,d2
demo-bob    2  deployments=d3
demo-carol  3  type=Admin deployments=12,d1
"""

WELCOME_RE = re.compile(r'^\{"event":"Welcome","payload":\{"id":"([0-9a-f]{16})"\}\}$')


def compact(obj):
    """The JSON text myxid sends: compact, keys in insertion order, UTF-8."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


# ------------------------------------------------------------ prerequisites

def prerequisite_missing(what):
    """Skip (77) when a prerequisite is missing, but fail under CI."""
    if os.environ.get("CI"):
        print(f"FAIL: prerequisite missing under CI: {what}")
        print("0 passed, 1 failed")
        sys.exit(1)
    print(f"SKIP: prerequisite missing: {what}")
    sys.exit(SKIP)


def _env_path(name, fallback):
    value = os.environ.get(name)
    if value:
        return value
    return os.path.normpath(os.path.join(HERE, "..", "..", fallback))


MYXID_BIN = _env_path("MYXID_BIN", "server/myxid")
PLUGIN_DIR = _env_path("MYXID_PLUGIN_DIR", "plugins/.libs")
EXAMPLE_PLUGIN = _env_path("MYXID_EXAMPLE_PLUGIN",
                           "plugins/example/.libs/auth_example.so")
SRCDIR = _env_path("MYXID_SRCDIR", ".")

# Running the daemon under a tool (valgrind): its command prefix, how much
# longer startup and shutdown may take, and the exit status that means the
# tool found errors.
WRAPPER = shlex.split(os.environ.get("MYXID_WRAPPER", ""))
WRAPPER_IS_VALGRIND = bool(WRAPPER) and os.path.basename(WRAPPER[0]) == "valgrind"
SLOWDOWN = 4 if WRAPPER else 1
WRAPPER_ERROR_RC = 99
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                     "runtime error: ", "WARNING: ThreadSanitizer")


def wrapped(argv, report_dir):
    """argv under MYXID_WRAPPER; valgrind writes its report into
    report_dir (one file per process) instead of the daemon's stderr."""
    if not WRAPPER:
        return list(argv)
    prefix = list(WRAPPER)
    if WRAPPER_IS_VALGRIND:
        prefix.append(f"--log-file={os.path.join(report_dir, 'valgrind.%p.log')}")
    return prefix + list(argv)


def tool_reports(rc, stderr_text, report_dir):
    """What the sanitizers or the wrapper found in one run: a list of
    report excerpts, empty when the run was clean."""
    found = []
    for marker in SANITIZER_MARKERS:
        at = stderr_text.find(marker)
        if at >= 0:
            found.append(stderr_text[max(0, at - 200):at + 3000])
    logs = []
    if WRAPPER_IS_VALGRIND and os.path.isdir(report_dir):
        for name in sorted(os.listdir(report_dir)):
            if name.startswith("valgrind.") and name.endswith(".log"):
                text = read_text(os.path.join(report_dir, name))
                if text.strip():
                    logs.append(f"{name}:\n{text[-6000:]}")
                # With --errors-for-leak-kinds, leaks count as errors too.
                m = re.search(r"ERROR SUMMARY: (\d+) errors", text)
                if m and m.group(1) != "0":
                    rc = WRAPPER_ERROR_RC
    if WRAPPER and rc == WRAPPER_ERROR_RC:
        # Under --quiet, a report file has text only when there were errors.
        found.extend(logs or [f"exit status {rc}: {WRAPPER[0]} reported errors"])
    return found

try:
    import websockets
    import websockets.exceptions
except ImportError:  # pragma: no cover - depends on the machine
    websockets = None


def require(websocket_client=True, example_plugin=False):
    if not (os.path.isfile(MYXID_BIN) and os.access(MYXID_BIN, os.X_OK)):
        prerequisite_missing(f"the daemon {MYXID_BIN} (build it first; set MYXID_BIN)")
    for plugin in ("auth_static.so", "policy_static.so"):
        if not os.path.isfile(os.path.join(PLUGIN_DIR, plugin)):
            prerequisite_missing(f"{plugin} in {PLUGIN_DIR} (set MYXID_PLUGIN_DIR)")
    if example_plugin and not os.path.isfile(EXAMPLE_PLUGIN):
        prerequisite_missing(f"the example plugin {EXAMPLE_PLUGIN} (make check builds it)")
    if websocket_client and websockets is None:
        prerequisite_missing("Python module websockets (apt-get install python3-websockets)")


# ------------------------------------------------------------ checks

class Suite:
    """Checks, tests and the closing summary of one test program."""

    current = None

    def __init__(self, name=None):
        self.name = name or os.path.basename(sys.argv[0])
        self.passed = 0
        self.failed = 0
        self.tests = []
        self.daemons = []          # running: stopped (and checked) at the end
        self.all_daemons = []      # every one started: logs, temp dirs
        self.test_name = ""
        self.tmpdirs = []
        Suite.current = self

    # -- checks
    def check(self, cond, what, detail=None):
        label = f"{self.test_name}: {what}" if self.test_name else what
        if cond:
            self.passed += 1
            print(f"PASS: {label}", flush=True)
        else:
            self.failed += 1
            print(f"FAIL: {label}", flush=True)
            if detail is not None:
                for line in str(detail).splitlines():
                    print(f"    {line}", flush=True)
        return bool(cond)

    def eq(self, got, want, what):
        return self.check(got == want, what, f"got:  {got!r}\nwant: {want!r}")

    def error(self, what, exc):
        self.check(False, what, "".join(traceback.format_exception(exc)).rstrip())

    # -- tests
    def test(self, fn=None, *, timeout=20):
        """Decorator: register a test (plain or async) with a hard timeout."""
        def register(f):
            self.tests.append((f, timeout))
            return f
        return register(fn) if fn is not None else register

    def _hard_timeout(self, signum, frame):
        print(f"FAIL: {self.test_name or self.name}: hung past every deadline; "
              "giving up", flush=True)
        self.failed += 1
        for d in list(self.daemons):
            d.kill()
        self._dump_logs()
        print(f"{self.passed} passed, {self.failed} failed", flush=True)
        os._exit(1)

    def run(self):
        """Run every test, each under a hard deadline, then stop the
        daemons (checking they exit 0) and print the summary."""
        started = time.monotonic()
        for fn, timeout in self.tests:
            self.test_name = fn.__name__
            timeout *= SLOWDOWN    # a daemon under valgrind starts slowly
            t0 = time.monotonic()
            try:
                if inspect.iscoroutinefunction(fn):
                    # wait_for cancels the test; the alarm is the backstop
                    # for a loop that never yields.
                    signal.signal(signal.SIGALRM, self._hard_timeout)
                    signal.alarm(timeout + 10)
                    asyncio.run(asyncio.wait_for(fn(), timeout))
                else:
                    # Blocking calls are interrupted by the alarm.
                    signal.signal(signal.SIGALRM, _raise_timeout)
                    signal.alarm(timeout)
                    fn()
            except TestTimeout:
                self.check(False, f"finished within {timeout}s", "the test hung")
            except TimeoutError as exc:
                if inspect.iscoroutinefunction(fn) and not exc.args:
                    self.check(False, f"finished within {timeout}s", "the test hung")
                else:
                    self.error("a socket operation timed out", exc)
            except Exception as exc:  # a test's bug or an unexpected answer
                self.error("raised an exception", exc)
            finally:
                signal.alarm(0)
            self._restart_dead_daemons()
            took = time.monotonic() - t0
            if took > 5:
                print(f"# {fn.__name__} took {took:.1f}s", flush=True)
        self.test_name = ""
        signal.signal(signal.SIGALRM, self._hard_timeout)
        signal.alarm(60)
        for d in list(self.daemons):
            d.stop()
        signal.alarm(0)
        if self.failed:
            self._dump_logs()
        self.cleanup()
        print(f"# {self.name}: {time.monotonic() - started:.1f}s")
        print(f"{self.passed} passed, {self.failed} failed", flush=True)
        sys.exit(0 if self.failed == 0 and self.passed > 0 else 1)

    def _restart_dead_daemons(self):
        """A daemon that died during a test is a failure of that test; it
        is restarted on the same port so later tests still say something."""
        for d in list(self.daemons):
            if d.proc is not None and d.proc.poll() is not None:
                rc = d.proc.returncode
                why = f"killed by {signal.Signals(-rc).name}" if rc < 0 else f"exit status {rc}"
                self.check(False, f"{d.name} still running afterwards", f"it died: {why}")
                d.log.close()
                d.log_dumped = False
                d.dump_log()
                d.start()

    def mkdtemp(self, prefix="myxidtest-"):
        """A temporary directory removed at the end unless a check failed."""
        path = tempfile.mkdtemp(prefix=prefix)
        self.tmpdirs.append(path)
        return path

    def cleanup(self):
        if self.failed == 0:
            for path in [d.dir for d in self.all_daemons] + self.tmpdirs:
                shutil.rmtree(path, ignore_errors=True)

    def _dump_logs(self):
        for d in self.all_daemons:
            d.dump_log()


class TestTimeout(Exception):
    pass


def _raise_timeout(signum, frame):
    raise TestTimeout()


# ------------------------------------------------------------ the daemon

def read_text(path, missing=""):
    """The text of a (log) file, bad UTF-8 replaced; missing if it cannot
    be read."""
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return missing


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def standard_exchanges():
    return """\
exchange deployment {
    type direct
    durable no
    policy static {
        allow attribute deployments
    }
}
exchange public {
    policy static {
        allow public
    }
}
exchange members {
    policy static {
        allow authenticated
    }
}
exchange user {
    policy static {
        allow key user.{user_id}
    }
}
exchange news {
    policy static {
        allow key news.*
    }
}
"""


def standard_config(*, publish_key=PUBLISH_KEY, example=False,
                    max_message_size="64k", handshake_timeout="10s",
                    extra=""):
    lines = []
    if publish_key is not None:
        lines.append(f"publish_key {publish_key}")
    lines.append(f"max_message_size {max_message_size}")
    lines.append("max_handshake_size 8k")
    lines.append(f"handshake_timeout {handshake_timeout}")
    lines.append("auth_timeout 5s")
    lines.append("log_level info")
    lines.append("auth static {\n    tokens_file tokens\n}")
    if example:
        lines.append(f"auth {EXAMPLE_PLUGIN} {{\n    delay_ms 20\n}}")
    lines.append(extra)
    lines.append(standard_exchanges())
    return "\n".join(lines) + "\n"


class Daemon:
    """myxid on a free loopback port with a config in a temporary dir.

    conf is the config without its listen line (one is prepended unless
    listen=False). files maps extra file names (relative to the config
    dir) to their contents; "tokens" defaults to DEFAULT_TOKENS.
    """

    def __init__(self, conf=None, *, files=None, listen=True, env=None,
                 args=(), name="myxid", start=True):
        self.suite = Suite.current
        self.name = name
        self.dir = tempfile.mkdtemp(prefix="myxidtest-")
        self.port = free_port()
        self.conf_path = os.path.join(self.dir, "myxid.conf")
        self.log_path = os.path.join(self.dir, "stderr.log")
        conf = standard_config() if conf is None else conf
        body = (f"listen 127.0.0.1:{self.port}\n" if listen else "") + conf
        with open(self.conf_path, "w") as f:
            f.write(body)
        files = dict({"tokens": DEFAULT_TOKENS}, **(files or {}))
        for fname, content in files.items():
            with open(os.path.join(self.dir, fname), "w") as f:
                f.write(content)
        self.env = dict(os.environ)
        for var in ("MYXI_PORT", "PORT", "MYXI_BIND_ADDRESS"):
            self.env.pop(var, None)
        self.env.update(env or {})
        self.args = list(args)
        self.proc = None
        self.returncode = None
        self.log_dumped = False
        if self.suite is not None:
            self.suite.daemons.append(self)
            self.suite.all_daemons.append(self)
        if start:
            self.start()

    @property
    def url(self):
        return f"ws://127.0.0.1:{self.port}/"

    def command(self):
        return [MYXID_BIN, "-c", self.conf_path, "-P", PLUGIN_DIR] + self.args

    def start(self, wait_port=None, timeout=10, wait_host="127.0.0.1"):
        # A daemon started again after stop() is stopped (and checked) at
        # the end like the others, never left running.
        if self.suite is not None and self not in self.suite.daemons:
            self.suite.daemons.append(self)
        self.log = open(self.log_path, "ab")
        log_start = self.log.tell()     # a restart appends to the same log
        self.proc = subprocess.Popen(wrapped(self.command(), self.dir),
                                     stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log,
                                     env=self.env, cwd=self.dir)
        port = wait_port or self.port
        deadline = time.monotonic() + timeout * SLOWDOWN
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.returncode = self.proc.returncode
                self.dump_log()
                raise RuntimeError(f"{self.name} exited with {self.returncode} at startup")
            if port_open(port, wait_host):
                self._wait_ready(log_start,
                                 min(deadline, time.monotonic() + 2 * SLOWDOWN))
                return self
            time.sleep(0.02)
        self.dump_log()
        raise RuntimeError(f"{self.name} did not listen on port {port} within "
                           f"{timeout * SLOWDOWN}s")

    def _wait_ready(self, log_start, deadline):
        """The daemon listens a moment before its signal handlers are in
        place and before it logs "ready"; under valgrind or the sanitizers
        that moment is long enough for a test's SIGTERM to kill it or for a
        test reading the log to miss the line. Wait for "ready" until
        deadline (a daemon logging elsewhere, "log syslog", costs that)."""
        while time.monotonic() < deadline and self.proc.poll() is None:
            with open(self.log_path, "rb") as f:
                f.seek(log_start)
                if b" ready: " in f.read():
                    return
            time.sleep(0.02)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, expect_rc=0, timeout=10):
        """Stop with sig; check (as part of the suite) that it exited expect_rc."""
        if self in (self.suite.daemons if self.suite else []):
            self.suite.daemons.remove(self)
        if self.proc is None:
            return None
        timeout *= SLOWDOWN
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                if self.suite:
                    self.suite.check(False, f"{self.name} stopped within {timeout}s of "
                                     f"{signal.Signals(sig).name}")
        self.returncode = self.proc.returncode
        self.log.close()
        if self.suite:
            self.suite.eq(self.returncode, expect_rc,
                          f"{self.name} exit status after {signal.Signals(sig).name}")
            self.check_tool_reports()
        return self.returncode

    def check_tool_reports(self):
        """Fail the test when a sanitizer or the wrapper reported errors
        in this daemon's runs (checked once, at stop)."""
        reports = tool_reports(self.returncode, self.read_log(), self.dir)
        if reports or WRAPPER:
            what = "under " + WRAPPER[0] if WRAPPER else "under the sanitizers"
            self.suite.check(not reports, f"{self.name}: no errors or leaks {what}",
                             "\n".join(reports))

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def read_log(self):
        return read_text(self.log_path)

    def dump_log(self):
        if self.log_dumped:
            return
        self.log_dumped = True
        text = self.read_log()
        lines = text.splitlines()
        if len(lines) > 150:
            lines = ["..."] + lines[-150:]
        print(f"# ---- stderr of {self.name} (port {self.port}, {self.conf_path})")
        for line in lines:
            print(f"# {line}")
        print("# ----", flush=True)


def write_file(d, name, text):
    """Write text to the file name in daemon d's directory."""
    with open(os.path.join(d.dir, name), "w") as f:
        f.write(text)


async def hup_and_wait(d, marker, before=None):
    """Send SIGHUP and wait until the log has more lines with marker than
    before (default: as many as now). True if it did within 5 s."""
    if before is None:
        before = d.read_log().count(marker)
    d.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if d.read_log().count(marker) > before:
            return True
        await asyncio.sleep(0.02)
    return False


def scrape(port):
    """GET /metrics: (response, {"name{labels}": value})."""
    r = http_request(port, "GET", "/metrics")
    values = {}
    for line in r.body.decode("utf-8", "replace").splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return r, values


def run_myxid(args, env=None, timeout=10):
    """Run myxid to completion (for -t, --version...): (rc, stdout, stderr)."""
    full_env = dict(os.environ)
    for var in ("MYXI_PORT", "PORT", "MYXI_BIND_ADDRESS"):
        full_env.pop(var, None)
    full_env.update(env or {})
    report_dir = tempfile.mkdtemp(prefix="myxidtest-tool-")
    p = subprocess.run(wrapped([MYXID_BIN] + list(args), report_dir),
                       capture_output=True, timeout=timeout * SLOWDOWN,
                       env=full_env, stdin=subprocess.DEVNULL)
    err = p.stderr.decode("utf-8", "replace")
    reports = tool_reports(p.returncode, err, report_dir)
    if Suite.current is not None and (reports or WRAPPER):
        Suite.current.check(not reports, "myxid " + " ".join(args[:2]) +
                            ": no errors or leaks under the tools", "\n".join(reports))
    shutil.rmtree(report_dir, ignore_errors=True)
    return p.returncode, p.stdout.decode("utf-8", "replace"), err


# ------------------------------------------------------------ websockets client

MISSING = object()


class NoMessage(AssertionError):
    """Raised by Client.recv when nothing arrives in time."""


def action_text(action=MISSING, payload=MISSING, tag=MISSING):
    msg = {}
    if action is not MISSING:
        msg["action"] = action
    if tag is not MISSING:
        msg["tag"] = tag
    if payload is not MISSING:
        msg["payload"] = payload
    return compact(msg)


class Client:
    """A websockets connection that has received its Welcome.

    Use as "async with Client(port) as c:"; every check goes to the
    current Suite.
    """

    def __init__(self, port, path="/", label="client", **kwargs):
        self.port = port
        self.path = path
        self.label = label
        self.kwargs = kwargs
        self.ws = None
        self.id = None

    async def __aenter__(self):
        return await self.connect()

    async def __aexit__(self, *exc):
        await self.close()

    async def connect(self):
        kwargs = dict(open_timeout=5, close_timeout=2, ping_interval=None,
                      max_size=8 * 1024 * 1024)
        kwargs.update(self.kwargs)
        self.ws = await websockets.connect(
            f"ws://127.0.0.1:{self.port}{self.path}", **kwargs)
        raw = await self.recv()
        m = WELCOME_RE.match(raw)
        if not m:
            Suite.current.check(False, f"{self.label}: Welcome", f"got: {raw!r}")
            raise AssertionError(f"no Welcome: {raw!r}")
        self.id = m.group(1)
        return self

    async def close(self):
        if self.ws is not None:
            await self.ws.close()

    async def send_raw(self, data):
        await self.ws.send(data)

    async def send(self, action=MISSING, payload=MISSING, tag=MISSING):
        await self.ws.send(action_text(action, payload, tag))

    async def recv(self, timeout=3.0):
        timeout *= SLOWDOWN
        try:
            msg = await asyncio.wait_for(self.ws.recv(), timeout)
        except asyncio.TimeoutError:
            raise NoMessage(f"{self.label}: no message within {timeout}s") from None
        if isinstance(msg, bytes):
            Suite.current.check(False, f"{self.label}: server sent text, not binary",
                                repr(msg[:200]))
            msg = msg.decode("utf-8", "replace")
        return msg

    async def recv_json(self, timeout=3.0):
        return json.loads(await self.recv(timeout))

    async def expect(self, want, what, timeout=3.0):
        """Receive one message and compare its exact text with want (an
        object, serialised compactly in its key order, or a string)."""
        want_text = want if isinstance(want, str) else compact(want)
        try:
            got = await self.recv(timeout)
        except NoMessage:
            got = f"<nothing within {timeout}s>"
        except websockets.exceptions.ConnectionClosed as exc:
            got = f"<connection closed: {exc}>"
        return Suite.current.eq(got, want_text, what)

    async def expect_nothing(self, what, timeout=0.3):
        try:
            got = await asyncio.wait_for(self.ws.recv(), timeout)
        except asyncio.TimeoutError:
            return Suite.current.check(True, what)
        return Suite.current.check(False, what, f"unexpected message: {got!r}")

    async def request(self, action, payload=MISSING, tag=MISSING, timeout=3.0):
        await self.send(action, payload, tag)
        return await self.recv(timeout)

    async def authenticate(self, token, tag="auth"):
        """Authenticate (a setup step, checked) and return the raw reply."""
        raw = await self.request("Authenticate", {"session_id": token}, tag)
        Suite.current.check(raw.startswith('{"event":"Authenticated"'),
                            f"setup: {self.label} authenticates with {token}", raw)
        return raw

    async def subscribe(self, exchange, routing_key, tag="sub"):
        return await self.request("Subscribe", {"exchange": exchange,
                                                "routing_key": routing_key}, tag)

    async def ping_roundtrip(self, what, tag="ping"):
        """Ping action: check the Pong shape exactly; also a barrier."""
        await self.send("Ping", tag=tag)
        return await self.expect_pong(tag, what)

    async def expect_pong(self, tag, what, timeout=3.0):
        try:
            raw = await self.recv(timeout)
        except (NoMessage, websockets.exceptions.ConnectionClosed) as exc:
            return Suite.current.check(False, what, f"no Pong: {exc!r}")
        return check_pong(raw, tag, what)


async def auth_reply(port, token, tag="t"):
    """The reply to an Authenticate with token on a fresh connection."""
    async with Client(port) as c:
        await c.send("Authenticate", {"session_id": token}, tag)
        return await c.recv()


def check_pong(raw, tag, what):
    try:
        t = json.loads(raw)["payload"]["time"]
    except Exception:
        return Suite.current.check(False, what, f"not a Pong: {raw!r}")
    ok = isinstance(t, int) and not isinstance(t, bool) and abs(t - time.time()) <= 5
    want = compact({"event": "Pong", "tag": tag, "payload": {"time": t}})
    return Suite.current.check(ok and raw == want, what,
                               f"got:  {raw!r}\nwant: {want!r} with time ~{int(time.time())}")


def subscribed(exchange, routing_key, tag):
    return {"event": "Subscribed", "tag": tag,
            "payload": {"exchange": exchange, "routing_key": routing_key}}


def unsubscribed(exchange, routing_key, tag, auto=False):
    return {"event": "Unsubscribed", "tag": tag,
            "payload": {"exchange_name": exchange, "routing_key": routing_key,
                        "auto": auto}}


def error(code, tag, exchange=MISSING, routing_key=MISSING):
    payload = {"error": code}
    if exchange is not MISSING:
        payload["exchange"] = exchange
    if routing_key is not MISSING:
        payload["routing_key"] = routing_key
    return {"event": "Error", "tag": tag, "payload": payload}


def authenticated(user_id, tag, user_type=None):
    payload = {"user_id": user_id}
    if user_type is not None:
        payload["user_type"] = user_type
    return {"event": "Authenticated", "tag": tag, "payload": payload}


INVALID_JSON = '{"event":"Error","payload":{"error":"InvalidJSON"}}'


# ------------------------------------------------------------ HTTP

class HTTPResponse:
    def __init__(self, raw):
        self.raw = raw
        head, sep, self.body = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status_line = lines[0]
        parts = self.status_line.split(" ", 2)
        self.version = parts[0]
        self.status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
        self.headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            self.headers[k.strip().lower()] = v.strip()
        self.complete = bool(sep)

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return f"<HTTP {self.status} {self.headers} {self.body[:300]!r}>"


def http_raw(port, data, timeout=5.0, shut_wr=False, chunks=None, pause=0.0):
    """Send data (or a list of chunks with a pause between them) and read
    the whole response until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        for i, chunk in enumerate(chunks or [data]):
            if i and pause:
                time.sleep(pause)
            try:
                s.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
        if shut_wr:
            s.shutdown(socket.SHUT_WR)
        return HTTPResponse(read_to_eof(s, timeout))


def read_to_eof(s, timeout=5.0):
    deadline = time.monotonic() + timeout
    out = b""
    while True:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = s.recv(65536)
        except ConnectionResetError:
            break
        if not data:
            break
        out += data
    return out


def http_request(port, method, path, headers=None, body=None, timeout=5.0):
    if isinstance(body, str):
        body = body.encode()
    hdrs = {"Host": f"127.0.0.1:{port}"}
    if body is not None:
        hdrs["Content-Length"] = str(len(body))
    hdrs.update(headers or {})
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in hdrs.items() if v is not None) + "\r\n"
    return http_raw(port, head.encode() + (body or b""), timeout)


def publish(port, exchange, routing_key, event, payload, key=PUBLISH_KEY,
            extra=None):
    doc = {"exchange": exchange, "routing_key": routing_key, "event": event,
           "payload": payload}
    doc.update(extra or {})
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return http_request(port, "POST", "/publish", headers, compact(doc))


def delivered(event, payload, exchange, rk):
    return {"event": event, "payload": payload, "mq": {"e": exchange, "rk": rk}}


# ------------------------------------------------------------ raw WebSocket

def ws_accept(key):
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()


def new_key():
    return base64.b64encode(os.urandom(16)).decode()


def handshake_request(port, key=None, path="/", method="GET", version="13",
                      headers=None, drop=()):
    """An upgrade request; headers add or replace, drop removes by name."""
    hdrs = {
        "Host": f"127.0.0.1:{port}",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": key or new_key(),
        "Sec-WebSocket-Version": version,
    }
    for k, v in (headers or {}).items():
        for existing in list(hdrs):
            if existing.lower() == k.lower():
                del hdrs[existing]
        hdrs[k] = v
    for k in drop:
        hdrs.pop(k, None)
    return (f"{method} {path} HTTP/1.1\r\n" +
            "".join(f"{k}: {v}\r\n" for k, v in hdrs.items()) + "\r\n").encode()


OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


def encode_frame(opcode, payload=b"", fin=True, rsv=0, mask=True,
                 mask_key=None, length=None, length_form=None):
    """A client frame. length overrides the stated length; length_form
    ('7', '16', '64') forces an encoding of it."""
    if isinstance(payload, str):
        payload = payload.encode()
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0x0F)
    mbit = 0x80 if mask else 0
    form = length_form or ("7" if n < 126 else "16" if n < 65536 else "64")
    if form == "7":
        head = struct.pack("!BB", b0, mbit | n)
    elif form == "16":
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if not mask:
        return head + payload
    key = mask_key if mask_key is not None else os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def close_payload(code, reason=b""):
    if isinstance(reason, str):
        reason = reason.encode()
    return struct.pack("!H", code) + reason


class Frame:
    def __init__(self, fin, rsv, opcode, masked, payload):
        self.fin, self.rsv, self.opcode = fin, rsv, opcode
        self.masked, self.payload = masked, payload

    @property
    def close_code(self):
        if self.opcode != OP_CLOSE or len(self.payload) < 2:
            return None
        return struct.unpack("!H", self.payload[:2])[0]

    @property
    def text(self):
        return self.payload.decode("utf-8", "replace")

    def __repr__(self):
        return (f"<Frame op={self.opcode} fin={self.fin} rsv={self.rsv} "
                f"masked={self.masked} {self.payload[:120]!r}>")


class ConnectionEnded(Exception):
    pass


class ClosedOnExit:
    """"with obj:" calls obj.close() at the end."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class RawWS(ClosedOnExit):
    """A hand-driven WebSocket client on a blocking socket.

    After a valid handshake it has read the Welcome frame. Every frame it
    reads is checked to be unmasked (server frames never are) and to have
    no RSV bits (but RSV1 on data frames once permessage-deflate is agreed).
    """

    def __init__(self, port, timeout=5.0, extra=b"", headers=None,
                 request=None, key=None, read_welcome=True):
        """headers: added to the standard upgrade request; request: a whole
        request to send instead, whose Sec-WebSocket-Key is key."""
        self.port = port
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        self.key = key or new_key()
        if request is None:
            request = handshake_request(port, self.key, headers=headers)
        self.sock.sendall(request + extra)
        head = self._read_until(b"\r\n\r\n")
        self.response = HTTPResponse(head)
        if self.response.status != 101:
            raise AssertionError(f"handshake refused: {self.response!r}")
        if self.response.headers.get("sec-websocket-accept") != ws_accept(self.key):
            raise AssertionError(f"bad Sec-WebSocket-Accept: {self.response!r}")
        # permessage-deflate agreed: server frames may carry RSV1.
        self.deflate = self.response.headers.get(
            "sec-websocket-extensions", "").startswith("permessage-deflate")
        self.welcome = None
        if read_welcome:
            f = self.recv_frame()
            if f.opcode != OP_TEXT or not WELCOME_RE.match(f.text):
                raise AssertionError(f"no Welcome: {f!r}")
            self.welcome = f.text

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def _fill(self):
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            raise ConnectionEnded("connection closed by the server")
        self.buf += data

    def _read_until(self, marker):
        while marker not in self.buf:
            self._fill()
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def _read_n(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send(self, data):
        """sendall that tolerates the server having closed already."""
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False

    def send_frame(self, opcode, payload=b"", **kw):
        return self.send(encode_frame(opcode, payload, **kw))

    def send_text(self, text, **kw):
        return self.send_frame(OP_TEXT, text, **kw)

    def recv_frame(self):
        b0, b1 = self._read_n(2)
        masked = bool(b1 & 0x80)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._read_n(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._read_n(8))[0]
        key = self._read_n(4) if masked else None
        payload = self._read_n(n)
        if masked:
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        f = Frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0x0F, masked, payload)
        suite = Suite.current
        if f.masked:
            suite.check(False, "server frames are never masked", repr(f))
        if f.rsv and not (f.rsv == 4 and self.deflate and f.opcode in (OP_TEXT, OP_BINARY)):
            suite.check(False, "server frames have no RSV bits (RSV1 only on compressed "
                        "data frames, once negotiated)", repr(f))
        return f

    def recv_text(self):
        f = self.recv_frame()
        if f.opcode != OP_TEXT:
            raise AssertionError(f"expected a text frame, got {f!r}")
        return f.text

    def read_close(self):
        """Read frames up to the close frame: (close frame or None, frames before)."""
        before = []
        while True:
            try:
                f = self.recv_frame()
            except (ConnectionEnded, socket.timeout) as exc:
                before.append(exc)
                return None, before
            if f.opcode == OP_CLOSE:
                return f, before
            before.append(f)

    def at_eof(self, timeout=4.0):
        """True if the server closes the TCP connection (after any data)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False


def expect_close(ws, code, what, eof=True):
    """Read up to the server's close frame and check its code; then check
    the server closes TCP. Returns the close frame."""
    suite = Suite.current
    f, before = ws.read_close()
    got = f.close_code if f is not None else None
    suite.check(got == code, what,
                f"got close {got!r} ({f!r}), want {code}; frames before: {before!r}")
    if eof and f is not None:
        ws.send_frame(OP_CLOSE, close_payload(code) if code else b"")
        suite.check(ws.at_eof(), f"{what}: then the server closes TCP")
    return f
