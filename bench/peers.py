"""
peers: what bench/run measures myxid against, in the same run.

- Nchan: nginx with Debian's nchan module, from the template
  bench/peers/nchan.conf, in a temporary directory on a free loopback
  port, run in the foreground as our child ("nginx -c FILE -p DIR -e LOG
  -g 'daemon off;'"): never the system nginx, nothing outside DIR.
- BareConsumer: bench/bare-consumer (rabbitmq-c, myxid's consumer
  settings, nothing else), started before the publisher; its JSON line is
  the broker's own ceiling for S3.

Both are stopped by their stop(); ACTIVE lists what runs, for the
driver's signal handler.
"""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

from myxidtest import free_port, port_open, read_text
from auth_throughput import child_pids

HERE = os.path.dirname(os.path.abspath(__file__))
NCHAN_TEMPLATE = os.path.join(HERE, "peers", "nchan.conf")
NCHAN_MODULE = "/usr/lib/nginx/modules/ngx_nchan_module.so"
NGINX = shutil.which("nginx", path="/usr/sbin:/usr/bin:" + os.environ.get("PATH", ""))

ACTIVE = []     # peers running now


def nchan_missing():
    """Why nchan cannot run here, or None."""
    if NGINX is None:
        return "no nginx (apt-get install nginx-light)"
    if not os.path.isfile(NCHAN_MODULE):
        return f"no {NCHAN_MODULE} (apt-get install libnginx-mod-nchan)"
    return None


def stop_process(proc, sig=signal.SIGTERM, timeout=15):
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Nchan:
    """A private nginx + nchan: subscribers at ws://127.0.0.1:PORT/sub/KEY,
    publisher at http://127.0.0.1:PORT/pub/KEY."""

    name = "nchan"

    def __init__(self, workers, nofile, tmp_parent=None):
        # Its directory is under tmp_parent, which the caller removes.
        self.dir = tempfile.mkdtemp(prefix="nchan-", dir=tmp_parent)
        self.port = free_port()
        self.conf_path = os.path.join(self.dir, "nginx.conf")
        self.log_path = os.path.join(self.dir, "error.log")
        with open(NCHAN_TEMPLATE) as f:
            text = f.read()
        values = {"DIR": self.dir, "PORT": str(self.port), "WORKERS": str(workers),
                  "NOFILE": str(nofile),
                  # a worker's sockets, with room for the listener and logs
                  "CONNECTIONS": str(max(1024, nofile - 64))}
        for name, value in values.items():
            text = text.replace(f"@{name}@", value)
        if os.geteuid() == 0:
            text = text.replace("@USER@", "root")
        else:   # "user" only means something to a root master
            text = text.replace("user @USER@;", "# user: not root, runs as the caller")
        with open(self.conf_path, "w") as f:
            f.write(text)
        self.proc = None

    @property
    def sub_url(self):
        return f"ws://127.0.0.1:{self.port}/sub/%k"

    @property
    def pub_url(self):
        return f"http://127.0.0.1:{self.port}/pub/%k"

    def start(self, timeout=15):
        self.log = open(os.path.join(self.dir, "stderr.log"), "ab")
        self.proc = subprocess.Popen(
            [NGINX, "-c", self.conf_path, "-p", self.dir, "-e", self.log_path,
             "-g", "daemon off;"], stdin=subprocess.DEVNULL, stdout=self.log,
            stderr=self.log, cwd=self.dir)
        ACTIVE.append(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited {self.proc.returncode} at startup: "
                                   + self.log_tail())
            if port_open(self.port) and len(self.worker_pids()) >= 1:
                return self
            time.sleep(0.05)
        raise RuntimeError(f"nginx did not listen on {self.port}: " + self.log_tail())

    def worker_pids(self):
        return child_pids(self.proc.pid) if self.proc else []

    def pids(self):
        """The master and its workers: what the memory and CPU columns sum."""
        return [self.proc.pid] + self.worker_pids() if self.proc else []

    def log_tail(self, lines=20):
        text = read_text(self.log_path) + read_text(os.path.join(self.dir, "stderr.log"))
        return "\n".join(text.splitlines()[-lines:])

    def stop(self):
        # SIGQUIT: nginx's graceful stop; SIGTERM would also do.
        stop_process(self.proc, signal.SIGQUIT)
        if self in ACTIVE:
            ACTIVE.remove(self)
        if self.proc is not None:
            self.log.close()


class BareConsumer:
    """bench/bare-consumer consuming K keys of exchange until M messages
    came; wait() returns its JSON result (with its exit status added)."""

    name = "bare consumer"

    def __init__(self, binary, amqp_url, exchange, keys, messages, timeout=300):
        self.cmd = [binary, "--url", amqp_url, "--exchange", exchange, "--keys", str(keys),
                    "--messages", str(messages), "--timeout", str(timeout)]
        self.proc = None
        self.ready_line = None

    def start(self):
        """Start it and wait until its queue is bound and it consumes."""
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        ACTIVE.append(self)
        # Binding 10,000 keys is 10,000 round trips: seconds, not minutes.
        # It prints an error line (and exits) if it cannot get there.
        line = self.proc.stderr.readline()
        if ": ready" not in line:
            rest = self.proc.stderr.read() if self.proc.poll() is not None else ""
            self.stop()
            raise RuntimeError(f"bare-consumer did not start: {line.strip()} {rest.strip()}")
        self.ready_line = line.strip()
        return self

    def wait(self, timeout):
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise RuntimeError("bare-consumer did not finish in time")
        if self in ACTIVE:
            ACTIVE.remove(self)
        lines = [ln for ln in out.splitlines() if ln.startswith("{")]
        if not lines:
            raise RuntimeError(f"bare-consumer exited {self.proc.returncode} "
                               f"with no result: {err.strip()}")
        result = json.loads(lines[-1])
        result["exit_status"] = self.proc.returncode
        return result

    def stop(self):
        stop_process(self.proc, signal.SIGKILL)
        if self in ACTIVE:
            ACTIVE.remove(self)
