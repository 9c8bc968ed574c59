"""
services: what the private database and broker servers of the tests
(mariadb.py, pgsql.py, rabbitmq.py) have in common.

    class MySuite(ServiceSuite):
        what = "the Foo servers"               # for the signal message
        def __init__(self, name=None):
            super().__init__(name, prefix="myxidtest-foo-")
            self.start_watchdog(kill_pid_files("server*"))
            self.catch_signals()

A ServiceSuite gets rid of its services (self.services, each with
kill(quiet=True), start_times and dump_log()): at the end (after the
daemons are stopped), on the hard timeout, on SIGTERM/SIGINT/SIGHUP, and,
through a watchdog process, even if the test program is SIGKILLed.
"""

import os
import signal
import subprocess
import tempfile

from myxidtest import Suite, read_text


class ServiceSuite(Suite):
    """A Suite with a private directory (self.base) and services to kill."""

    what = "the services"       # "# SIGTERM: killing <what>"
    kill_daemons_on_signal = False

    def __init__(self, name=None, prefix="myxidtest-service-"):
        super().__init__(name)
        self.base = tempfile.mkdtemp(prefix=prefix)
        self.tmpdirs.append(self.base)
        self.services = []
        self.watchdog = None

    # -- hooks for the subclasses
    def describe(self, service):
        """How the messages name a service."""
        return repr(service)

    def start_watchdog(self, body, *extra_args):
        self.watchdog = start_watchdog(self.base, body, *extra_args)

    def catch_signals(self):
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)

    # -- getting rid of the services
    def _on_signal(self, signum, frame):
        print(f"# {signal.Signals(signum).name}: killing {self.what}", flush=True)
        if self.kill_daemons_on_signal:
            for d in list(self.daemons):
                d.kill()
        self.kill_services()
        os._exit(1)

    def kill_services(self):
        for service in self.services:
            try:
                service.kill(quiet=True)
            except Exception as exc:  # best effort: the watchdog is the backstop
                print(f"# could not kill {self.describe(service)}: {exc!r}", flush=True)
        if self.watchdog is not None and self.watchdog.poll() is None:
            self.watchdog.kill()
            self.watchdog.wait()

    def _hard_timeout(self, signum, frame):
        self.kill_services()
        super()._hard_timeout(signum, frame)

    def cleanup(self):
        self.kill_services()
        for service in self.services:
            if service.start_times:
                times = ", ".join(f"{t:.1f}s" for t in service.start_times)
                print(f"# {self.describe(service)}: started "
                      f"{len(service.start_times)}x ({times})")
        super().cleanup()

    def _dump_logs(self):
        super()._dump_logs()
        for service in self.services:
            service.dump_log()


# ------------------------------------------------------------ the watchdog

_WAIT_FOR_PARENT = r'''
parent=$1 base=$2
while kill -0 "$parent" 2>/dev/null; do sleep 1; done
'''


def start_watchdog(base, body, *extra_args):
    """A shell, in its own session, that waits until this program is gone
    and then runs body (with $base set; extra_args are $3...)."""
    return subprocess.Popen(["/bin/sh", "-c", _WAIT_FOR_PARENT + body, "watchdog",
                             str(os.getpid()), base, *extra_args],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def kill_pid_files(dirs):
    """A watchdog body that SIGKILLs the PID of each "$base"/DIRS/pid file
    whose command line names our private directory, so a reused PID is
    never hit."""
    return f'''
for f in "$base"/{dirs}/pid; do
    [ -f "$f" ] || continue
    p=$(cat "$f" 2>/dev/null)
    case "$p" in ''|*[!0-9]*) continue;; esac
    if tr '\\0' ' ' < /proc/$p/cmdline 2>/dev/null | grep -qF "$base/"; then
        kill -9 "$p"
    fi
done
'''


# ------------------------------------------------------------ logs

def print_log(title, lines):
    """Print lines as comments between "# ---- title" and "# ----"."""
    print(f"# ---- {title}")
    for line in lines:
        print(f"# {line}")
    print("# ----", flush=True)


def dump_log_tail(path, name, keep=60):
    """Print the last keep lines of the log at path ("..." before them if
    there were more) as "# ---- NAME (PATH)"; nothing if it cannot be read."""
    text = read_text(path, None)
    if text is None:
        return
    lines = text.splitlines()
    if len(lines) > keep:
        lines = ["..."] + lines[-keep:]
    print_log(f"{name} ({path})", lines)
