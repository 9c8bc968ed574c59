"""
hostile: helpers shared by the fault-injection and hostile-client tests
(test_hostile_*.py, test_faults_*.py, test_plugin_failures.py).

- what the daemon process costs: RSS, CPU time, open descriptors, read
  from /proc/PID;
- the log discipline: every line of a daemon's log is one event with a
  timestamp and a level, and client input never puts a raw control byte
  (newline, ESC...) into it;
- many WebSockets at once on plain sockets (no asyncio per socket), for
  the tests that need hundreds or a thousand of them.
"""

import os
import re
import select
import socket
import time

from myxidtest import (OP_TEXT, Suite, action_text, encode_frame, handshake_request)

# "2026-01-01T00:00:00.000Z info: ..." and nothing else, ever.
LOG_LINE_RE = re.compile(
    rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (debug|info|notice|warning|error): "
    rb"[^\x00-\x1f\x7f]*$")


# ------------------------------------------------------------ /proc

def vm_rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def asan_in(pid):
    """Is pid built with AddressSanitizer? Its quarantine keeps freed
    blocks (256 MiB), so RSS bounds say nothing there. gcc links it as
    libasan.so; clang links it into the program."""
    with open(f"/proc/{pid}/maps") as f:
        if "libasan" in f.read():
            return True
    with open(f"/proc/{pid}/exe", "rb") as f:
        return b"__asan_init" in f.read()


def cpu_seconds(pid):
    """utime + stime of pid, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rpartition(")")[2].split()
    # rest[0] is field 3 (state): utime and stime are fields 14 and 15
    return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


# ------------------------------------------------------------ the log

class LogWatch:
    """Reads a daemon's log from where the last look ended, so that each
    hostile case is judged on the lines it caused."""

    def __init__(self, daemon):
        self.daemon = daemon
        self.offset = 0

    def new_bytes(self):
        try:
            with open(self.daemon.log_path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except OSError:
            return b""
        # Only whole lines; a line being written is read next time.
        end = data.rfind(b"\n") + 1
        self.offset += end
        return data[:end]

    def check(self, what, forbidden=()):
        """Check every new line is one well-formed event and contains none
        of the forbidden byte strings. Returns the new lines."""
        data = self.new_bytes()
        lines = data.split(b"\n")[:-1] if data else []
        bad = [ln for ln in lines if not LOG_LINE_RE.match(ln)]
        Suite.current.check(not bad, f"{what}: the log stays one well-formed line per event",
                            "\n".join(repr(ln) for ln in bad[:5]))
        leaked = [(f, ln) for f in forbidden for ln in lines if f in ln]
        if forbidden:
            Suite.current.check(not leaked, f"{what}: no client secret or raw input in the log",
                                "\n".join(repr(x) for x in leaked[:5]))
        return lines


def wait_log(daemon, needle, timeout=5.0):
    """Wait until needle (str) is in the daemon's log; True if it came."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in daemon.read_log():
            return True
        time.sleep(0.05)
    return False


# ------------------------------------------------------------ many sockets

class Herd:
    """n WebSockets on blocking-at-setup, non-blocking-afterwards plain
    sockets: opened (Welcome read), told things in bulk, and read in bulk
    with poll(). Every socket has its own receive buffer of complete
    text frames."""

    def __init__(self, port, n, timeout=30.0):
        self.port = port
        self.socks = []
        self.bufs = {}
        deadline = time.monotonic() + timeout
        # One at a time, each read up to its 101: a burst of connects
        # overflows the listen backlog and costs SYN retransmits (seconds).
        for _ in range(n):
            if time.monotonic() > deadline:
                raise AssertionError("Herd: handshakes too slow")
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            self.socks.append(s)
            s.sendall(handshake_request(port))
            buf = b""
            while b"\r\n\r\n" not in buf:
                chunk = s.recv(4096)
                if not chunk:
                    raise AssertionError("Herd: refused: " + repr(buf))
                buf += chunk
            if not buf.startswith(b"HTTP/1.1 101 "):
                raise AssertionError("Herd: refused: " + repr(buf[:200]))
            self.bufs[s.fileno()] = buf.partition(b"\r\n\r\n")[2]
            s.setblocking(False)
        got = self.collect(1, timeout=max(1.0, deadline - time.monotonic()))
        missing = [i for i, msgs in enumerate(got) if len(msgs) != 1 or
                   not msgs[0].startswith('{"event":"Welcome"')]
        if missing:
            raise AssertionError(f"Herd: {len(missing)} sockets without a Welcome")

    def send_all(self, text_for):
        """Send text_for(i) to socket i (one masked text frame each)."""
        for i, s in enumerate(self.socks):
            data = encode_frame(OP_TEXT, text_for(i))
            s.setblocking(True)
            s.sendall(data)
            s.setblocking(False)

    def send(self, i, text):
        s = self.socks[i]
        s.setblocking(True)
        s.sendall(encode_frame(OP_TEXT, text))
        s.setblocking(False)

    def _frames(self, fd):
        """Pop the complete frames in fd's buffer: list of (opcode, text)."""
        out = []
        buf = self.bufs[fd]
        while len(buf) >= 2:
            n = buf[1] & 0x7F
            head = 2
            if n == 126:
                if len(buf) < 4:
                    break
                n, head = int.from_bytes(buf[2:4], "big"), 4
            elif n == 127:
                if len(buf) < 10:
                    break
                n, head = int.from_bytes(buf[2:10], "big"), 10
            if len(buf) < head + n:
                break
            out.append((buf[0] & 0x0F, buf[head:head + n].decode("utf-8", "replace")))
            buf = buf[head + n:]
        self.bufs[fd] = buf
        return out

    def collect(self, per_socket, timeout=10.0, closed=None, until=None):
        """Read until every socket has per_socket more text messages (or,
        with until, a message for which until(text) is true), or time is
        up: a list, per socket, of the texts read. Sockets the server
        closed are noted in closed (a set of indexes) if given."""
        got = [[] for _ in self.socks]
        index = {s.fileno(): i for i, s in enumerate(self.socks)}
        want = {s.fileno() for s in self.socks}
        deadline = time.monotonic() + timeout
        for fd in list(want):           # frames that came with earlier reads
            i = index[fd]
            for op, text in self._frames(fd):
                if op == OP_TEXT:
                    got[i].append(text)
            if len(got[i]) >= per_socket or (until is not None and any(map(until, got[i]))):
                want.discard(fd)
        poller = select.poll()          # select() stops at fd 1023
        for fd in want:
            poller.register(fd, select.POLLIN)
        while want and time.monotonic() < deadline:
            ready = poller.poll(max(0, int((deadline - time.monotonic()) * 1000)))
            for fd, _ in ready:
                if fd not in want:
                    continue
                i = index[fd]
                try:
                    chunk = self.socks[i].recv(65536)
                except BlockingIOError:
                    continue
                except ConnectionResetError:
                    chunk = b""
                if not chunk:
                    want.discard(fd)
                    poller.unregister(fd)
                    if closed is not None:
                        closed.add(i)
                    continue
                self.bufs[fd] += chunk
                done = False
                for op, text in self._frames(fd):
                    if op == OP_TEXT:
                        got[i].append(text)
                        done = done or (until is not None and until(text))
                if done or len(got[i]) >= per_socket:
                    want.discard(fd)
                    poller.unregister(fd)
        return got

    def close(self):
        for s in self.socks:
            try:
                s.close()
            except OSError:
                pass
        self.socks = []


def subscribe_text(exchange, routing_key, tag):
    return action_text("Subscribe", {"exchange": exchange, "routing_key": routing_key}, tag)


def http_head(port, data, timeout=5.0):
    """Send data and read the answer's head only (a 101 leaves the socket
    open): the HTTPResponse of what was read until the blank line or EOF."""
    from myxidtest import HTTPResponse
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        out = b""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in out and time.monotonic() < deadline:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, socket.timeout, TimeoutError):
                break
            if not chunk:
                break
            out += chunk
        return HTTPResponse(out)
