"""
mariadb: a private MariaDB server for myxid's MySQL plugin tests.

Each test program starts its own server: a data directory made by
mariadb-install-db in a temporary directory, mariadbd on a free loopback
port with its socket, pid file and error log there too, and every program
run with --no-defaults, so no my.cnf, no system service, no /var/lib/mysql
and no /run/mysqld are ever touched. Several test programs (and the
machine's own MariaDB) can run side by side.

    from mariadb import MariaDBSuite, MariaDB, require_mariadb
    require_mariadb()
    T = MariaDBSuite()                 # kills its server at the end, even on a hang
    db = MariaDB().start()
    db.setup("authie_schema_mysql.sql")  # database, user myxid (SELECT only), schema
    db.port, db.user, db.password, db.database
    db.sql("INSERT ...")               # as root, in the test database
    db.query("SELECT ...")             # rows as lists of strings (NULL: None)
    db.kill(); db.start()              # SIGKILL (a crash), then the same port and data

A watchdog process SIGKILLs the server if the test program itself dies
without cleaning up.
"""

import os
import shutil
import subprocess
import time

from myxidtest import Suite, free_port, port_open, prerequisite_missing
from services import ServiceSuite, dump_log_tail, kill_pid_files


def _find(*names):
    for name in names:
        path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
        if path:
            return path
    return None


MARIADBD = _find("mariadbd", "mysqld")
INSTALL_DB = _find("mariadb-install-db", "mysql_install_db")
CLIENT = _find("mariadb", "mysql")
START_TIMEOUT = 60


def require_mariadb():
    """The server, its installer and the command-line client."""
    if MARIADBD is None or INSTALL_DB is None:
        prerequisite_missing("MariaDB server (apt-get install mariadb-server)")
    if CLIENT is None:
        prerequisite_missing("MariaDB client (apt-get install mariadb-client)")


def sql_string(value):
    """A MariaDB expression for the text value, safe whatever it holds:
    its UTF-8 bytes in hex, converted to utf8mb4. None gives NULL."""
    if value is None:
        return "NULL"
    data = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    if not data:
        return "''"
    return f"CONVERT(X'{data.hex()}' USING utf8mb4)"


# ------------------------------------------------------------ the suite

class MariaDBSuite(ServiceSuite):
    """A Suite that also gets rid of its MariaDB servers: at the end (after
    the daemons are stopped), on the hard timeout, on SIGTERM/SIGINT, and,
    through a watchdog process, even if the test program is SIGKILLed."""

    what = "the MariaDB servers"

    def __init__(self, name=None):
        super().__init__(name, prefix="myxidtest-mariadb-")
        self.servers = self.services
        # The watchdog SIGKILLs our mariadbd once this program is gone.
        self.start_watchdog(kill_pid_files("server*"))
        self.catch_signals()

    def describe(self, server):
        return f"mariadb {server.port}"

    def kill_servers(self):
        self.kill_services()

    def cleanup(self):
        for server in self.servers:
            server.stop()
        super().cleanup()


# ------------------------------------------------------------ a server

class MariaDBError(Exception):
    pass


_counter = 0


class MariaDB:
    """One private server on 127.0.0.1:PORT, data in the suite's directory."""

    def __init__(self, suite=None, user="myxid", password="myxid-test-pw",
                 database="myxid_test"):
        global _counter
        self.suite = suite or Suite.current
        _counter += 1
        self.dir = os.path.join(self.suite.base, f"server{_counter}")
        self.datadir = os.path.join(self.dir, "data")
        self.socket = os.path.join(self.dir, "sock")
        self.pid_file = os.path.join(self.dir, "pid")
        self.log_path = os.path.join(self.dir, "error.log")
        os.makedirs(self.dir)
        self.port = free_port()
        self.user, self.password, self.database = user, password, database
        self.proc = None
        self.installed = False
        self.start_times = []
        self.log_dumped = False
        self.suite.servers.append(self)

    def __repr__(self):
        return f"<MariaDB 127.0.0.1:{self.port} pid={self.proc and self.proc.pid}>"

    # -- life cycle
    def install(self):
        args = [INSTALL_DB, "--no-defaults", f"--datadir={self.datadir}",
                "--auth-root-authentication-method=normal", "--skip-test-db"]
        if os.geteuid() == 0:
            args.append("--user=root")
        p = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=120, cwd=self.dir)
        if p.returncode != 0:
            raise MariaDBError(f"mariadb-install-db exited {p.returncode}: "
                               f"{p.stdout.decode(errors='replace')}"
                               f"{p.stderr.decode(errors='replace')}")
        self.installed = True

    def command(self):
        args = [MARIADBD, "--no-defaults", f"--datadir={self.datadir}",
                f"--port={self.port}", "--bind-address=127.0.0.1",
                f"--socket={self.socket}", f"--pid-file={self.pid_file}",
                f"--log-error={self.log_path}", "--skip-name-resolve",
                "--skip-log-bin", "--character-set-server=utf8mb4",
                "--collation-server=utf8mb4_general_ci",
                "--innodb-buffer-pool-size=32M", "--innodb-log-file-size=16M",
                "--innodb-flush-log-at-trx-commit=2", "--max-connections=300",
                # Outage tests kill the server: its clients must not hang.
                "--wait-timeout=600"]
        if os.geteuid() == 0:
            args.append("--user=root")
        return args

    def start(self, timeout=START_TIMEOUT, quiet=False):
        """Start the server (again: same port and data) and wait until it
        answers. Returns self."""
        if self.alive():
            raise MariaDBError(f"{self!r} is already running")
        if not self.installed:
            self.install()
        t0 = time.monotonic()
        self.log = open(os.path.join(self.dir, "stdout.log"), "ab")
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log, cwd=self.dir)
        deadline = t0 + timeout
        while True:
            if self.proc.poll() is not None:
                self.dump_log(force=True)
                raise MariaDBError(f"mariadbd exited {self.proc.returncode} at startup")
            if port_open(self.port) and self._client(["-e", "SELECT 1"]).returncode == 0:
                break
            if time.monotonic() > deadline:
                self.dump_log(force=True)
                raise MariaDBError(f"mariadbd did not answer within {timeout}s")
            time.sleep(0.05)
        took = time.monotonic() - t0
        self.start_times.append(took)
        if not quiet:
            print(f"# mariadb (127.0.0.1:{self.port}, pid {self.proc.pid}) "
                  f"started in {took:.1f}s", flush=True)
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self, quiet=False, timeout=15):
        """SIGKILL, as in a crash: the server dies at once, its clients'
        connections are reset. Waits until the port is closed."""
        if not self.alive():
            return
        pid = self.proc.pid
        self.proc.kill()
        self.proc.wait(timeout)
        deadline = time.monotonic() + timeout
        while port_open(self.port):
            if time.monotonic() > deadline:
                raise MariaDBError(f"port {self.port} still open after SIGKILL")
            time.sleep(0.02)
        self.log.close()
        if not quiet:
            print(f"# mariadb killed (SIGKILL to pid {pid})", flush=True)

    def stop(self, timeout=30):
        """A clean shutdown (SIGTERM), falling back to SIGKILL."""
        if not self.alive():
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill(quiet=True)
            return
        self.log.close()

    # -- SQL through the command-line client, as root over the socket
    def _client(self, args, database=None, input_text=None, timeout=30):
        cmd = [CLIENT, "--no-defaults", "-uroot", f"--socket={self.socket}",
               "--default-character-set=utf8mb4", "--batch", "--skip-column-names"]
        if database:
            cmd.append(f"--database={database}")
        return subprocess.run(cmd + list(args), capture_output=True, timeout=timeout,
                              input=input_text.encode() if input_text is not None else None,
                              stdin=None if input_text is not None else subprocess.DEVNULL)

    def sql(self, statements, database=True):
        """Run statements as root (in the test database unless database is
        False); returns stdout. Raises MariaDBError on failure."""
        p = self._client([], self.database if database else None, input_text=statements)
        if p.returncode != 0:
            raise MariaDBError(f"SQL failed ({p.returncode}): "
                               f"{p.stderr.decode(errors='replace')}\n{statements[:500]}")
        return p.stdout.decode("utf-8", "replace")

    def query(self, statement):
        """Rows of a SELECT as lists of strings; NULL is None. Values with
        tabs or newlines come back escaped, as --batch writes them."""
        out = self.sql(statement)
        return [[None if v == "NULL" else v for v in line.split("\t")]
                for line in out.splitlines()]

    def setup(self, schema_path):
        """The test database, user (SELECT only: the plugin needs no more)
        and schema."""
        self.sql(f"CREATE DATABASE {self.database} CHARACTER SET utf8mb4;\n"
                 f"CREATE USER '{self.user}'@'127.0.0.1' IDENTIFIED BY '{self.password}';\n"
                 f"GRANT SELECT ON {self.database}.* TO '{self.user}'@'127.0.0.1';\n",
                 database=False)
        with open(schema_path) as f:
            self.sql(f.read())
        return self

    def connection_ids(self, user=None):
        """Ids of the sessions of user (default: ours) on the server."""
        rows = self.query("SELECT id FROM information_schema.processlist "
                          f"WHERE user = {sql_string(user or self.user)}")
        return [int(r[0]) for r in rows]

    def dump_log(self, force=False):
        if self.log_dumped and not force:
            return
        self.log_dumped = True
        dump_log_tail(self.log_path, "mariadb error log")
