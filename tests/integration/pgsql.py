"""
pgsql: a private, throwaway PostgreSQL 15 cluster for myxid's SQL tests.

Each test program creates its own cluster (initdb) in a temporary
directory and runs it on a free loopback port, with its Unix socket in that
directory, so it never touches the system's cluster (nor /var/run/
postgresql) and several test programs can run side by side. fsync is off:
the data is thrown away.

    from pgsql import PgSuite, PgCluster, require_pgsql
    require_pgsql()
    T = PgSuite()                 # stops its clusters at the end, even on a hang
    pg = PgCluster().start()      # initdb on first start; role and database made
    pg.conninfo                   # "hostaddr=127.0.0.1 port=P dbname=... user=... password=..."
    pg.sql("SELECT 1")            # psql as the superuser: output, one row a line
    pg.load(path)                 # run an SQL file
    pg.kill()                     # pg_ctl stop -m immediate: a crash, for outages
    pg.start()                    # again: same port, same data (crash recovery)

initdb refuses to run as root: then the server programs run as the
"postgres" user (runuser), in a directory chowned to it. psql itself runs as
the caller and logs in through the socket (local connections are trusted;
TCP needs the role's password, as the daemon's would).
"""

import os
import pwd
import shutil
import subprocess
import time

from myxidtest import PLUGIN_DIR, Suite, free_port, port_open, prerequisite_missing
from services import ServiceSuite, dump_log_tail

PG_BIN = os.environ.get("MYXID_PG_BIN", "/usr/lib/postgresql/15/bin")
INITDB = os.path.join(PG_BIN, "initdb")
PG_CTL = os.path.join(PG_BIN, "pg_ctl")
POSTGRES = os.path.join(PG_BIN, "postgres")
PSQL = shutil.which("psql", path=PG_BIN + os.pathsep + os.environ.get("PATH", ""))
HERE = os.path.dirname(os.path.abspath(__file__))
AUTHIE_SCHEMA = os.path.join(HERE, "authie_schema.sql")
PGSQL_PLUGIN = os.path.join(PLUGIN_DIR, "pgsql.so")

# The caller's PG* settings must reach neither psql nor the daemons.
for _var in [v for v in os.environ if v.startswith("PG")]:
    if _var != "PG_BIN":
        del os.environ[_var]


def _server_user():
    """None when we may run the server ourselves; else "postgres" (root)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        prerequisite_missing("a 'postgres' user to run PostgreSQL as (we are root)")
    return "postgres"


def require_pgsql():
    """The PostgreSQL 15 server programs, psql, and the built plugin."""
    for prog in (INITDB, PG_CTL, POSTGRES):
        if not os.access(prog, os.X_OK):
            prerequisite_missing(f"{prog} (apt-get install postgresql; "
                                 "or set MYXID_PG_BIN)")
    if PSQL is None:
        prerequisite_missing("psql (apt-get install postgresql-client)")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        prerequisite_missing("runuser (util-linux), to run PostgreSQL as postgres")
    if not os.path.isfile(PGSQL_PLUGIN):
        prerequisite_missing(f"{PGSQL_PLUGIN} (configure found no libpq?)")
    _server_user()


def sql_literal(s):
    """s as an SQL string literal (standard_conforming_strings is on)."""
    if "\0" in s:
        raise ValueError("NUL in an SQL literal")
    return "'" + s.replace("'", "''") + "'"


# ------------------------------------------------------------ the suite

class PgSuite(ServiceSuite):
    """A Suite that also stops its clusters: at the end (after the daemons,
    so they see an orderly goodbye), on the hard timeout, on SIGTERM/SIGINT,
    and, through a watchdog process, even if the test program is killed."""

    what = "the PostgreSQL clusters"

    def __init__(self, name=None):
        super().__init__(name, prefix="myxidtest-pg-")
        self.clusters = self.services
        user = _server_user()
        if user is not None:
            shutil.chown(self.base, user=user)
        # The watchdog stops (immediate mode) every cluster under base once
        # this program is gone; pg_ctl only ever touches the data dir it is given.
        run_as = f"runuser -u {user} -- " if user else ""
        self.start_watchdog(f'''
for d in "$base"/cluster*/data; do
    [ -f "$d/postmaster.pid" ] && {run_as}"{PG_CTL}" -D "$d" stop -m immediate -w -t 10
done
''')
        self.catch_signals()

    def describe(self, cluster):
        return f"postgresql port {cluster.port}"

    def stop_clusters(self):
        self.kill_services()


# ------------------------------------------------------------ a cluster

class PgError(Exception):
    pass


_cluster_counter = 0


class PgCluster:
    """One private cluster with a login role and a database it owns."""

    def __init__(self, suite=None, user="myxid", password="myxid pass'word",
                 dbname="myxid_test"):
        global _cluster_counter
        self.suite = suite or Suite.current
        _cluster_counter += 1
        self.dir = os.path.join(self.suite.base, f"cluster{_cluster_counter}")
        self.data = os.path.join(self.dir, "data")
        self.log_path = os.path.join(self.dir, "postgresql.log")
        self.port = free_port()
        self.user, self.password, self.dbname = user, password, dbname
        self.os_user = _server_user()
        os.mkdir(self.dir, 0o700)
        if self.os_user:
            shutil.chown(self.dir, user=self.os_user)
        self.initialised = False
        self.start_times = []
        self.log_dumped = False
        self.suite.clusters.append(self)

    def __repr__(self):
        return f"<PgCluster port={self.port} {self.data}>"

    @property
    def conninfo(self):
        """For the daemon: TCP by address (no DNS), password quoted as
        libpq wants it."""
        pw = self.password.replace("\\", "\\\\").replace("'", "\\'")
        return (f"hostaddr=127.0.0.1 port={self.port} dbname={self.dbname} "
                f"user={self.user} password='{pw}'")

    def conf_conninfo(self, **extra):
        """conninfo as a quoted word of myxid's configuration (where \\
        and \" are the only escapes)."""
        text = self.conninfo + "".join(f" {k}={v}" for k, v in extra.items())
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    # -- running the server programs
    def _server_cmd(self, args):
        if self.os_user:
            return ["runuser", "-u", self.os_user, "--"] + args
        return args

    def _run(self, args, timeout=60):
        p = subprocess.run(self._server_cmd(args), stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=timeout, cwd="/")
        if p.returncode != 0:
            raise PgError(f"{' '.join(args)} exited {p.returncode}: "
                          f"{p.stdout.decode(errors='replace')}"
                          f"{p.stderr.decode(errors='replace')}")
        return p

    def _initdb(self):
        self._run([INITDB, "-D", self.data, "-U", "postgres", "-E", "UTF8",
                   "--locale=C", "--auth-local=trust",
                   "--auth-host=scram-sha-256", "--no-sync"], timeout=120)

    # -- life cycle
    def start(self, quiet=False):
        """Start (initdb first, the first time) and wait until it accepts
        connections. Returns self."""
        t0 = time.monotonic()
        first = not self.initialised
        if first:
            self._initdb()
        options = " ".join([
            f"-c port={self.port}", "-c listen_addresses=127.0.0.1",
            f"-c unix_socket_directories={self.dir}", "-c fsync=off",
            "-c synchronous_commit=off", "-c full_page_writes=off",
            "-c max_connections=100", "-c log_min_messages=warning",
            "-c log_connections=off", "-c TimeZone=UTC",
        ])
        self._run([PG_CTL, "-D", self.data, "-l", self.log_path, "-w",
                   "-t", "60", "-o", options, "start"], timeout=90)
        deadline = time.monotonic() + 30
        while not port_open(self.port):
            if time.monotonic() > deadline:
                raise PgError(f"postgresql runs but does not listen on {self.port}")
            time.sleep(0.02)
        if first:
            self.sql(f"CREATE ROLE {self.user} LOGIN PASSWORD {sql_literal(self.password)}",
                     db="postgres")
            self.sql(f"CREATE DATABASE {self.dbname}", db="postgres")
            self.initialised = True
        took = time.monotonic() - t0
        self.start_times.append(took)
        if not quiet:
            print(f"# postgresql (port {self.port}, {self.data}) started in {took:.1f}s",
                  flush=True)
        return self

    def running(self):
        return os.path.exists(os.path.join(self.data, "postmaster.pid"))

    def kill(self, quiet=False):
        """pg_ctl stop -m immediate: every backend dies at once, as in a
        crash; the next start runs crash recovery."""
        if not self.initialised or not self.running():
            return
        self._run([PG_CTL, "-D", self.data, "-w", "-t", "30", "-m", "immediate", "stop"])
        deadline = time.monotonic() + 10
        while port_open(self.port):
            if time.monotonic() > deadline:
                raise PgError(f"port {self.port} still open after the stop")
            time.sleep(0.02)
        if not quiet:
            print(f"# postgresql (port {self.port}) stopped -m immediate", flush=True)

    # -- SQL
    def sql(self, text, db=None, timeout=60):
        """Run text with psql as the superuser over the socket; returns the
        output (unaligned, tuples only: one row a line, '|' between
        columns). Raises PgError on any error."""
        env = dict(os.environ, PGCLIENTENCODING="UTF8")
        p = subprocess.run([PSQL, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                            "-h", self.dir, "-p", str(self.port), "-U", "postgres",
                            "-d", db or self.dbname],
                           input=text.encode("utf-8"), capture_output=True,
                           timeout=timeout, env=env)
        if p.returncode != 0:
            raise PgError(f"psql exited {p.returncode}: {p.stderr.decode(errors='replace')}\n"
                          f"SQL: {text[:500]}")
        return p.stdout.decode("utf-8")

    def load(self, path, db=None):
        with open(path, encoding="utf-8") as f:
            return self.sql(f.read(), db=db)

    def dump_log(self):
        if self.log_dumped:
            return
        self.log_dumped = True
        dump_log_tail(self.log_path, "postgresql log")
