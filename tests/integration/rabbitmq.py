"""
rabbitmq: private RabbitMQ nodes for myxid's broker tests.

Each test program starts its own nodes on loopback, under a unique node
name, on free ports, with their data, logs and Erlang cookie in a temporary
directory, so several test programs (and anybody else's RabbitMQ) can run
side by side. Nothing global is touched: no system service, no
/var/lib/rabbitmq, no shared cookie, no `epmd -kill` (a node starts epmd on
127.0.0.1 if none runs; it is left running, as epmd is shared).

    from rabbitmq import BrokerSuite, RabbitNode, require_rabbitmq
    require_rabbitmq()
    T = BrokerSuite()          # kills its nodes at the end, even on a hang
    node = RabbitNode().start()
    node.url                   # amqp://guest:guest@127.0.0.1:PORT
    node.kill(); node.start()  # SIGKILL, then the same ports and data dir
    node.list_bindings(), node.list_queues(), node.close_connections(...)

A node takes several seconds to boot (printed as "# rabbitmq ... started
in N s"): test files start one and reuse it.
"""

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

from myxidtest import (HERE, ClosedOnExit, Suite, compact, free_port, http_request,
                       port_open, prerequisite_missing, read_text, require)
from services import ServiceSuite, kill_pid_files, print_log

try:
    import pika
except ImportError:  # pragma: no cover - depends on the machine
    pika = None

# Debian's /usr/sbin/rabbitmq-server is a wrapper that su's to the rabbitmq
# user (and writes to /var/log/rabbitmq); the scripts behind it run the node
# as the calling user, with our private HOME and directories.
_LIB_BIN = "/usr/lib/rabbitmq/bin"


def _tool(name):
    path = os.path.join(_LIB_BIN, name)
    if os.access(path, os.X_OK):
        return path
    return shutil.which(name)


RABBITMQ_SERVER = _tool("rabbitmq-server")
RABBITMQCTL = _tool("rabbitmqctl")
RUBY = shutil.which("ruby")
BUNNY_PUBLISH = os.path.join(HERE, "bunny_publish.rb")
CTL_TIMEOUT = 60

# A test program's RABBITMQ_URL must not leak into the daemons it starts
# (it would turn broker mode on, or point it at someone else's broker).
os.environ.pop("RABBITMQ_URL", None)


def broker_suite(bunny=False):
    """The prerequisites of a broker test (require(), require_rabbitmq(bunny)),
    then its BrokerSuite."""
    require()
    require_rabbitmq(bunny)
    return BrokerSuite()


def require_rabbitmq(bunny=False):
    """RabbitMQ's server and CLI, pika, and (if bunny) ruby with ruby-bunny."""
    if RABBITMQ_SERVER is None or RABBITMQCTL is None or shutil.which("erl") is None:
        prerequisite_missing("RabbitMQ (apt-get install rabbitmq-server)")
    if pika is None:
        prerequisite_missing("Python module pika (apt-get install python3-pika)")
    if bunny:
        if RUBY is None:
            prerequisite_missing("ruby (apt-get install ruby ruby-bunny)")
        p = subprocess.run([RUBY, "-e", 'require "bunny"; require "json"'],
                           capture_output=True, timeout=30)
        if p.returncode != 0:
            prerequisite_missing("the Ruby gem bunny (apt-get install ruby-bunny)")


# ------------------------------------------------------------ the suite

class BrokerSuite(ServiceSuite):
    """A Suite that also gets rid of its RabbitMQ nodes: at the end (after
    the daemons are stopped), on the hard timeout, on SIGTERM/SIGINT, and,
    through a watchdog process, even if the test program is SIGKILLed."""

    what = "the daemons and the RabbitMQ nodes"
    kill_daemons_on_signal = True

    def __init__(self, name=None):
        super().__init__(name, prefix="rabbit-myxidtest-")
        self.home = os.path.join(self.base, "home")
        os.mkdir(self.home)
        cookie = os.path.join(self.home, ".erlang.cookie")
        with open(cookie, "w") as f:
            f.write(os.urandom(16).hex().upper())
        os.chmod(cookie, 0o400)
        self.nodes = self.services
        # The watchdog SIGKILLs our beam processes once this program is gone.
        self.start_watchdog(kill_pid_files("node*"))
        self.catch_signals()

    def describe(self, node):
        return f"rabbitmq {node.nodename}"

    def kill_nodes(self):
        self.kill_services()


# ------------------------------------------------------------ a node

class RabbitError(Exception):
    pass


_node_counter = 0


def _pid_alive(pid):
    """True if pid runs (a zombie, e.g. under a PID 1 that does not reap,
    counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return False


class RabbitNode:
    """One private RabbitMQ node: myxidtest-<pid>-<n>@localhost."""

    def __init__(self, suite=None, user="guest", password="guest"):
        global _node_counter
        self.suite = suite or Suite.current
        _node_counter += 1
        self.index = _node_counter
        self.nodename = f"myxidtest-{os.getpid()}-{self.index}@localhost"
        self.port = free_port()
        self.dist_port = free_port()
        while self.dist_port == self.port:
            self.dist_port = free_port()
        self.dir = os.path.join(self.suite.base, f"node{self.index}")
        os.makedirs(os.path.join(self.dir, "mnesia"))
        os.makedirs(os.path.join(self.dir, "log"))
        self.pid_file = os.path.join(self.dir, "pid")
        with open(os.path.join(self.dir, "enabled_plugins"), "w") as f:
            f.write("[].\n")        # no management plugin, nothing else
        with open(os.path.join(self.dir, "rabbitmq.conf"), "w") as f:
            # Test machines may have little free disk: never block publishers.
            f.write("disk_free_limit.absolute = 1MB\n")
        self.user, self.password = user, password
        self.env = dict(os.environ)
        for var in list(self.env):
            if var.startswith("RABBITMQ_") or var in ("ERL_EPMD_PORT",):
                del self.env[var]
        loopback = "-kernel inet_dist_use_interface {127,0,0,1}"
        self.env.update({
            "HOME": self.suite.home,        # the private .erlang.cookie
            "RABBITMQ_NODENAME": self.nodename,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": loopback,
            "RABBITMQ_CTL_ERL_ARGS": loopback,
            # The CLI's own distribution ports: a wider range than the
            # default 11, as several test programs may query at once.
            "RABBITMQ_CTL_DIST_PORT_MIN": "36200",
            "RABBITMQ_CTL_DIST_PORT_MAX": "36399",
            "RABBITMQ_MNESIA_BASE": os.path.join(self.dir, "mnesia"),
            "RABBITMQ_LOG_BASE": os.path.join(self.dir, "log"),
            "RABBITMQ_PID_FILE": self.pid_file,
            "RABBITMQ_ENABLED_PLUGINS_FILE": os.path.join(self.dir, "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": os.path.join(self.dir, "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": os.path.join(self.dir, "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": os.path.join(self.dir, "rabbitmq-env.conf"),
        })
        self.pid = None
        self.start_times = []
        self.log_dumped = False
        self.suite.nodes.append(self)

    def __repr__(self):
        return f"<RabbitNode {self.nodename} amqp={self.port} pid={self.pid}>"

    @property
    def url(self):
        """No path: the default vhost "/" for every client. (A bare trailing
        "/" means the empty vhost "" to Bunny and rabbitmq-c alike, per the
        AMQP URI spec, and RabbitMQ has no such vhost.)"""
        return f"amqp://{self.user}:{self.password}@127.0.0.1:{self.port}"

    @property
    def url_vhost(self):
        """The same with the vhost spelt out, as in Bunny's default
        (amqp://guest:guest@localhost:5672/%2F)."""
        return f"amqp://{self.user}:{self.password}@127.0.0.1:{self.port}/%2F"

    @property
    def log_path(self):
        return os.path.join(self.dir, "log", f"{self.nodename}.log")

    # -- life cycle
    def start(self, timeout=120, quiet=False):
        """Start the node (again: same ports and data dir) and wait until
        it runs. Returns self; the time taken is printed and kept."""
        self.launch()
        return self.wait_started(timeout, quiet)

    def launch(self):
        """Start booting; wait_started() waits for the end (so two nodes
        can boot at once)."""
        if self.pid is not None and _pid_alive(self.pid):
            raise RabbitError(f"{self.nodename} is already running (pid {self.pid})")
        try:
            os.unlink(self.pid_file)
        except FileNotFoundError:
            pass
        self.t_launch = time.monotonic()
        p = subprocess.run([RABBITMQ_SERVER, "-detached"], env=self.env,
                           stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=60, cwd=self.dir)
        if p.returncode != 0:
            raise RabbitError(f"rabbitmq-server -detached exited {p.returncode}: "
                              f"{p.stderr.decode(errors='replace')}")

    def wait_started(self, timeout=120, quiet=False):
        p = self.ctl_run(["wait", "--timeout", str(timeout), self.pid_file],
                         timeout=timeout + 15)
        if p.returncode != 0:
            self.dump_log(force=True)
            raise RabbitError(f"{self.nodename} did not start: rabbitmqctl wait exited "
                              f"{p.returncode}: {p.stdout.decode(errors='replace')}"
                              f"{p.stderr.decode(errors='replace')}")
        self.pid = self.read_pid()
        deadline = time.monotonic() + 30
        while not port_open(self.port):
            if time.monotonic() > deadline:
                raise RabbitError(f"{self.nodename} runs but does not listen on {self.port}")
            time.sleep(0.05)
        took = time.monotonic() - self.t_launch
        self.start_times.append(took)
        if not quiet:
            print(f"# rabbitmq {self.nodename} (amqp {self.port}, pid {self.pid}) "
                  f"started in {took:.1f}s", flush=True)
        return self

    def read_pid(self):
        try:
            with open(self.pid_file) as f:
                text = f.read().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None

    def _ours(self, pid):
        """pid is this test program's beam (its command line names our dir)."""
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                return (self.suite.base + "/").encode() in f.read()
        except OSError:
            return False

    def alive(self):
        return self.pid is not None and _pid_alive(self.pid)

    def kill(self, quiet=False, timeout=15):
        """SIGKILL the beam process (the broker dies at once, as in a crash
        or an OOM kill) and wait until it is gone and its port is closed."""
        pid = self.pid or self.read_pid()
        if pid is None or not _pid_alive(pid):
            self.pid = None
            return
        if not self._ours(pid):
            raise RabbitError(f"pid {pid} is not our beam; not killing it")
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + timeout
        while _pid_alive(pid) or port_open(self.port):
            if time.monotonic() > deadline:
                raise RabbitError(f"{self.nodename} (pid {pid}) still there after SIGKILL")
            time.sleep(0.02)
        self.pid = None
        if not quiet:
            print(f"# rabbitmq {self.nodename} killed (SIGKILL to pid {pid})", flush=True)

    def freeze(self):
        """SIGSTOP the beam: the broker hangs with its sockets open (a
        stalled host), which only heartbeats reveal."""
        self._signal(signal.SIGSTOP)

    def thaw(self):
        self._signal(signal.SIGCONT)

    def _signal(self, sig):
        pid = self.pid or self.read_pid()
        if pid is None or not self._ours(pid):
            raise RabbitError(f"{self.nodename}: no beam of ours to signal (pid {pid})")
        os.kill(pid, sig)

    def stop(self, timeout=60):
        """A clean shutdown (rabbitmqctl stop), falling back to SIGKILL."""
        if not self.alive():
            return
        p = self.ctl_run(["stop", self.pid_file], timeout=timeout)
        if p.returncode != 0 or self.alive():
            self.kill(quiet=True)
        self.pid = None

    # -- rabbitmqctl
    def ctl_run(self, args, timeout=CTL_TIMEOUT, node=None):
        return subprocess.run([RABBITMQCTL, "-n", node or self.nodename] + list(args),
                              env=self.env, stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=timeout)

    def ctl(self, *args, timeout=CTL_TIMEOUT, check=True):
        """rabbitmqctl -n NODE ARGS: its stdout; raises RabbitError on failure
        unless check is false."""
        p = self.ctl_run(args, timeout)
        out = p.stdout.decode("utf-8", "replace")
        if check and p.returncode != 0:
            raise RabbitError(f"rabbitmqctl {' '.join(args)} exited {p.returncode}: "
                              f"{out}{p.stderr.decode('utf-8', 'replace')}")
        return out

    def ctl_json(self, command, *items, extra=()):
        out = self.ctl("-q", command, *extra, "--formatter", "json", *items)
        out = out.strip()
        return json.loads(out) if out else []

    def list_bindings(self):
        """[{source_name, source_kind, destination_name, destination_kind,
        routing_key, arguments}], the default exchange's bindings left out."""
        rows = self.ctl_json("list_bindings", "source_name", "source_kind",
                             "destination_name", "destination_kind",
                             "routing_key", "arguments")
        return [r for r in rows if r["source_name"] != ""]

    def myxid_bindings(self, prefix="myxid."):
        """{(exchange, routing_key, queue)} bound to myxid's node queues."""
        return {(r["source_name"], r["routing_key"], r["destination_name"])
                for r in self.list_bindings()
                if r["destination_kind"] == "queue"
                and r["destination_name"].startswith(prefix)}

    def list_queues(self):
        """[{name, durable, auto_delete, exclusive, arguments (a dict),
        messages, consumers}]."""
        rows = self.ctl_json("list_queues", "name", "durable", "auto_delete",
                             "exclusive", "arguments", "messages", "consumers")
        for r in rows:
            r["arguments"] = _table(r.get("arguments"))
        return rows

    def myxid_queues(self, prefix="myxid."):
        return {r["name"]: r for r in self.list_queues() if r["name"].startswith(prefix)}

    def list_exchanges(self):
        """{name: {type, durable, auto_delete, internal}} without amq.* and
        the default exchange."""
        rows = self.ctl_json("list_exchanges", "name", "type", "durable",
                             "auto_delete", "internal")
        return {r["name"]: r for r in rows
                if r["name"] and not r["name"].startswith("amq.")}

    def list_connections(self):
        """[{name ("127.0.0.1:CLIENT -> 127.0.0.1:SERVER"), peer_port, user,
        state, timeout (the negotiated heartbeat, s), client_properties (a
        dict), product}]."""
        rows = self.ctl_json("list_connections", "name", "peer_port", "user",
                             "state", "timeout", "client_properties")
        for r in rows:
            r["client_properties"] = _table(r.get("client_properties"))
            r["product"] = str(r["client_properties"].get("product", ""))
        return rows

    def myxid_connections(self):
        """The connections that are not our test clients (pika, Bunny)."""
        return [c for c in self.list_connections()
                if not re.search(r"pika|bunny", c["product"], re.I)]

    def close_connections(self, which=None, reason="closed by the test"):
        """Close connections from the broker side (rabbitmqctl
        close_connection): every connection whose row (list_connections)
        satisfies which, by default myxid's. Returns their names."""
        which = which or (lambda c: not re.search(r"pika|bunny", c["product"], re.I))
        names = [c["name"] for c in self.list_connections() if which(c)]
        if not names:
            return []
        pids = {}
        for line in self.ctl("-q", "list_connections", "name", "pid").splitlines():
            name, _, pid = line.rpartition("\t")
            if pid.startswith("<"):
                pids[name] = pid
        for name in names:
            if name in pids:
                self.ctl("close_connection", pids[name], reason, check=False)
        return names

    def close_all_connections(self, reason="closed by the test"):
        self.ctl("close_all_connections", reason)

    def eval(self, expr):
        return self.ctl("eval", expr)

    # -- cluster
    def join(self, other):
        """Make this (running) node a member of other's cluster."""
        self.ctl("stop_app")
        self.ctl("join_cluster", other.nodename)
        self.ctl("start_app")
        self.ctl("await_startup", timeout=120)

    def running_nodes(self):
        out = self.ctl("-q", "cluster_status", "--formatter", "json")
        return sorted(json.loads(out).get("running_nodes", []))

    # -- logs
    def read_log(self):
        return read_text(self.log_path)

    def dump_log(self, force=False, lines=60):
        if self.log_dumped and not force:
            return
        self.log_dumped = True
        text = self.read_log().splitlines()[-lines:]
        print_log(f"last {len(text)} lines of {self.log_path}", text)


def _table(value):
    """rabbitmqctl's JSON for an AMQP table, [[name, type, value], ...]
    (nested), as a dict."""
    if isinstance(value, dict):
        return value
    out = {}
    for item in value or []:
        if isinstance(item, list) and len(item) == 3:
            name, kind, v = item
            out[name] = _table(v) if kind == "table" else v
        elif isinstance(item, list) and len(item) == 2:
            out[item[0]] = item[1]
    return out


def start_node(timeout=120):
    """A running node, or a failed suite (with the node's log) if RabbitMQ
    cannot start here."""
    node = RabbitNode()
    try:
        return node.start(timeout)
    except Exception as exc:
        _setup_failed("setup: RabbitMQ starts", exc, node)


def _setup_failed(what, exc, *show_logs):
    """A failed check what (the logs of show_logs' nodes after it), the
    nodes killed, the summary, exit 1."""
    suite = Suite.current
    suite.check(False, what, repr(exc))
    for node in show_logs:
        node.dump_log(force=True)
    suite.kill_nodes()
    print(f"{suite.passed} passed, {suite.failed} failed", flush=True)
    sys.exit(1)


def start_cluster(timeout=120):
    """Two nodes, A and B, booted at once; B joins A's cluster. A failed
    suite if that cannot be done here."""
    try:
        return _start_cluster(timeout)
    except Exception as exc:
        _setup_failed("setup: a two-node RabbitMQ cluster starts", exc)


def _start_cluster(timeout):
    a, b = RabbitNode(), RabbitNode()
    a.launch()
    b.launch()
    a.wait_started(timeout)
    b.wait_started(timeout)
    t0 = time.monotonic()
    b.join(a)
    print(f"# {b.nodename} joined {a.nodename} in {time.monotonic() - t0:.1f}s", flush=True)
    return a, b


# ------------------------------------------------------------ waiting

def wait_until(fn, timeout=15.0, interval=0.1):
    """Call fn until it returns something true; that value, or the last
    false one when time is up."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


async def in_thread(fn, *args, **kw):
    return await asyncio.get_running_loop().run_in_executor(None, lambda: fn(*args, **kw))


async def await_until(fn, timeout=15.0, interval=0.1):
    """wait_until for async tests: fn (blocking) runs in a thread."""
    deadline = time.monotonic() + timeout
    while True:
        value = await in_thread(fn)
        if value or time.monotonic() >= deadline:
            return value
        await asyncio.sleep(interval)


def bindings_match(node, want, absent=(), queue=None):
    """node's myxid bindings include every (exchange, key) in want and none
    in absent (for queue, if given). Returns the bindings when so, else
    None."""
    got = node.myxid_bindings()
    pairs = {(e, k) for e, k, q in got if queue is None or q == queue}
    if set(want) <= pairs and not (set(absent) & pairs):
        return got or True
    return None


async def wait_bindings(node, want, absent=(), timeout=15.0, queue=None):
    """Wait (polling rabbitmqctl list_bindings) until every (exchange, key)
    in want is bound to a myxid queue and none in absent is. True if so."""
    return bool(await await_until(lambda: bindings_match(node, want, absent, queue),
                                  timeout, 0.05))


def healthz(port):
    """(HTTP status, JSON body or None) of GET /healthz."""
    resp = http_request(port, "GET", "/healthz")
    try:
        return resp.status, resp.json()
    except Exception:
        return resp.status, None


def broker_state(port):
    try:
        status, body = healthz(port)
    except OSError:
        return None
    return body.get("broker") if isinstance(body, dict) else None


async def wait_broker(port, state="up", timeout=20.0):
    """Wait until /healthz says "broker": state; returns the seconds it took
    or None."""
    t0 = time.monotonic()
    ok = await await_until(lambda: broker_state(port) == state, timeout, 0.05)
    return time.monotonic() - t0 if ok else None


# ------------------------------------------------------------ clients

async def subscribe_ok(client, exchange, routing_key, tag="s"):
    """Subscribe and check the exact Subscribed reply (a setup step)."""
    from myxidtest import subscribed
    await client.send("Subscribe", {"exchange": exchange, "routing_key": routing_key}, tag)
    return await client.expect(subscribed(exchange, routing_key, tag),
                               f"setup: {client.label} subscribes to {exchange}/{routing_key}")


async def unsubscribe_ok(client, exchange, routing_key, tag="u"):
    from myxidtest import unsubscribed
    await client.send("Unsubscribe", {"exchange": exchange, "routing_key": routing_key}, tag)
    return await client.expect(unsubscribed(exchange, routing_key, tag),
                               f"{client.label} unsubscribes from {exchange}/{routing_key}")


async def receive_all(client, n, timeout=10.0):
    """Up to n messages (texts) within timeout overall."""
    from myxidtest import NoMessage
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            out.append(await client.recv(left))
        except NoMessage:
            break
    return out


# ------------------------------------------------------------ daemon config

def broker_block(urls, queue_expires="60s", heartbeat="10s", extra=""):
    if isinstance(urls, str):
        urls = [urls]
    lines = ["broker rabbitmq {"]
    lines += [f"    url {u}" for u in urls]
    if queue_expires is not None:
        lines.append(f"    queue_expires {queue_expires}")
    if heartbeat is not None:
        lines.append(f"    heartbeat {heartbeat}")
    if extra:
        lines.append(extra)
    lines.append("}")
    return "\n".join(lines)


# Exchanges added to the standard ones (deployment, public, members, user,
# news: direct, non-durable) for the broker tests.
EXTRA_EXCHANGES = """\
exchange topics {
    type topic
    policy static {
        allow public
    }
}
exchange fan {
    type fanout
    policy static {
        allow public
    }
}
exchange stable {
    type direct
    durable yes
    policy static {
        allow public
    }
}
exchange doomed {
    policy static {
        allow public
    }
}
"""


def broker_config(urls=None, *, queue_expires="60s", heartbeat="10s",
                  exchanges=EXTRA_EXCHANGES, **kw):
    """standard_config() plus a broker block (unless urls is None, for
    RABBITMQ_URL) and the extra exchanges."""
    from myxidtest import standard_config
    extra = kw.pop("extra", "")
    if urls is not None:
        extra = broker_block(urls, queue_expires, heartbeat) + "\n" + extra
    return standard_config(extra=extra + "\n" + exchanges, **kw)


# ------------------------------------------------------------ publishers

def event_body(event, payload):
    """Myxi.push_event's body: {"event":E,"payload":P}.to_json."""
    return compact({"event": event, "payload": payload}).encode("utf-8")


class Publisher(ClosedOnExit):
    """A pika connection for publishing raw bodies and events; declares
    the exchange like Myxi (direct, non-durable) unless declare is None."""

    def __init__(self, url, heartbeat=0):
        params = pika.URLParameters(url)
        params.heartbeat = heartbeat
        params.blocked_connection_timeout = 30
        params.connection_attempts = 1
        params.socket_timeout = 10
        self.conn = pika.BlockingConnection(params)
        self.ch = self.conn.channel()
        self.ch.confirm_delivery()
        self.declared = set()

    def close(self):
        try:
            if self.conn.is_open:
                self.conn.close()
        except Exception:
            pass

    def publish_raw(self, exchange, routing_key, body, declare="direct",
                    properties=None):
        """Publish body (bytes or str) and wait for the broker's confirm."""
        if declare and exchange not in self.declared:
            self.ch.exchange_declare(exchange, declare, durable=False)
            self.declared.add(exchange)
        if isinstance(body, str):
            body = body.encode("utf-8")
        self.ch.basic_publish(exchange, str(routing_key), body, properties)

    def publish(self, exchange, routing_key, event, payload=None, declare="direct"):
        self.publish_raw(exchange, routing_key,
                         event_body(event, {} if payload is None else payload),
                         declare)

    def exchange_delete(self, exchange):
        self.ch.exchange_delete(exchange)
        self.declared.discard(exchange)


def pika_publish(url, exchange, routing_key, event, payload=None, declare="direct"):
    """One event published the way Myxi does, with a connection of its own."""
    with Publisher(url) as p:
        p.publish(exchange, routing_key, event, payload, declare)


def bunny_publish(url, exchange, routing_key, event, payload=None, timeout=30):
    """Run bunny_publish.rb (Myxi.push_event with ruby-bunny). payload is
    an object (serialised here, parsed back by the script) or JSON text.
    Returns the CompletedProcess."""
    args = [RUBY, BUNNY_PUBLISH, url, exchange, str(routing_key), event]
    if payload is not None:
        args.append(payload if isinstance(payload, str) else json.dumps(payload))
    return subprocess.run(args, capture_output=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


class Tap:
    """A private exclusive queue bound to (exchange, key) to see exactly
    what publishers put on the wire: body, routing key and properties."""

    def __init__(self, url, exchange, routing_key, declare="direct"):
        self.pub = Publisher(url)
        ch = self.pub.ch
        if declare:
            ch.exchange_declare(exchange, declare, durable=False)
        self.queue = ch.queue_declare("", exclusive=True).method.queue
        ch.queue_bind(self.queue, exchange, str(routing_key))

    def get(self, timeout=10.0):
        """(method, properties, body) of the next message, or None."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            method, props, body = self.pub.ch.basic_get(self.queue, auto_ack=True)
            if method is not None:
                return method, props, body
            self.pub.conn.sleep(0.05)
        return None

    def close(self):
        self.pub.close()


class Streamer(threading.Thread):
    """Publishes count events (payload {"seq": i}) at a steady pace on a
    connection of its own, in a thread; .published counts them."""

    def __init__(self, url, exchange, routing_key, event, count, interval):
        super().__init__(daemon=True)
        self.args = (url, exchange, routing_key, event, count, interval)
        self.published = 0
        self.error = None

    def run(self):
        url, exchange, routing_key, event, count, interval = self.args
        try:
            with Publisher(url) as p:
                for i in range(count):
                    p.publish(exchange, routing_key, event, {"seq": i})
                    self.published += 1
                    time.sleep(interval)
        except Exception as exc:
            self.error = exc
