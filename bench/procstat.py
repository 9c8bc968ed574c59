"""
procstat: what a server costs while bench/run drives it, read from /proc.

myxid-bench reads one process (--server-pid); nginx runs a master and
several workers, so bench/run samples every server the same way here: a
thread reads the status and stat files of the server's processes every
SAMPLE_S seconds while the generator runs, and keeps

- the first reading (before the generator connected anything),
- the peak of RssAnon summed over the processes (private memory: each
  process's own heap), and the peak of RssShmem of the largest one
  (shared memory, nchan's message and subscriber store: every worker maps
  the same segment, so summing would count it once per worker),
- utime + stime summed over the processes, at the start and at the end.

Memory per socket is (peak - first) / sockets: the sockets are all held
during --hold, when nothing else allocates, so the peak is their cost.
"""

import threading

# The CPU time of a process, as bench/run-auth reads it.
from auth_throughput import proc_cpu

SAMPLE_S = 0.1


def status_kib(pid):
    """{field: KiB} of the memory lines of /proc/PID/status ({} if gone)."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                name, _, value = line.partition(":")
                if name in ("VmRSS", "RssAnon", "RssShmem"):
                    out[name] = int(value.split()[0])
    except (OSError, ValueError, IndexError):
        return {}
    return out


def reading(pids):
    """One reading over pids: anon KiB summed, shmem KiB of the largest,
    RSS summed, CPU seconds summed."""
    anon = shmem = rss = 0
    cpu = 0.0
    for pid in pids:
        st = status_kib(pid)
        anon += st.get("RssAnon", 0)
        rss += st.get("VmRSS", 0)
        shmem = max(shmem, st.get("RssShmem", 0))
        cpu += proc_cpu(pid)
    return {"anon_kib": anon, "shmem_kib": shmem, "rss_kib": rss, "cpu_s": cpu}


class Sampler:
    """Samples pids (a list, or a function returning one) on a thread
    between start() and stop(); summary() is the result."""

    def __init__(self, pids):
        self.pids = pids if callable(pids) else (lambda: list(pids))
        self.first = None
        self.last = None
        self.peak_anon = 0
        self.peak_shmem = 0
        self.peak_rss = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _take(self):
        r = reading(self.pids())
        if self.first is None:
            self.first = r
        self.last = r
        self.peak_anon = max(self.peak_anon, r["anon_kib"])
        self.peak_shmem = max(self.peak_shmem, r["shmem_kib"])
        self.peak_rss = max(self.peak_rss, r["rss_kib"])
        self.samples += 1

    def _loop(self):
        while not self._stop.wait(SAMPLE_S):
            self._take()

    def start(self):
        self._take()
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join()
        self._take()
        return self.summary()

    def summary(self):
        first, last = self.first, self.last
        return {
            "processes": len(self.pids()),
            "samples": self.samples,
            "anon_before_kib": first["anon_kib"],
            "anon_peak_kib": self.peak_anon,
            "shmem_before_kib": first["shmem_kib"],
            "shmem_peak_kib": self.peak_shmem,
            "rss_before_kib": first["rss_kib"],
            "rss_peak_kib": self.peak_rss,
            "cpu_s": round(last["cpu_s"] - first["cpu_s"], 3),
        }


def kib_per_socket(sampled, sockets):
    """Private plus shared memory growth per socket, in KiB (None if no
    socket was held)."""
    if not sockets:
        return None
    grew = ((sampled["anon_peak_kib"] - sampled["anon_before_kib"]) +
            (sampled["shmem_peak_kib"] - sampled["shmem_before_kib"]))
    return max(0, grew) / sockets
