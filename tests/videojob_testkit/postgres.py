"""A real PostgreSQL server the tests and the archive benchmark start: initdb into a fresh
folder, the server on 127.0.0.1 and a free port (never another address), a password only this
process knows, stopped and its folder removed at the end.

PostgreSQL refuses to run as root, and the test machines run as root: the server then runs as
the `postgres` user the Debian package creates (or `nobody`), in a folder under /tmp that user
owns (pytest's own temp folders are root's, mode 0700). The server runs in the foreground as our
child, the way `RedisServer` runs redis-server: its pid is ours to stop, and nothing outlives the
session. `pg_ctl` would daemonise it, leaving a pid file to trust instead.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from videojob_testkit.processes import free_port, wait_until

SUPERUSER = "videojob"
# Durability is not what the tests are about: these make a test database cheap to create and
# write (the benchmark passes its own settings, with fsync on).
FAST: dict[str, str] = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


def bindir() -> Path:
    """Where initdb and postgres are: pg_config's answer, else the Debian layout's newest."""
    if (found := shutil.which("pg_config")) is not None:
        out = subprocess.run([found, "--bindir"], capture_output=True, text=True, check=False)
        if out.returncode == 0 and (Path(out.stdout.strip()) / "postgres").exists():
            return Path(out.stdout.strip())
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"),
                    key=lambda p: int(Path(p).parts[-3]))
    if debian:
        return Path(debian[-1]).parent
    if (found := shutil.which("postgres")) is not None:
        return Path(found).resolve().parent
    raise AssertionError("PostgreSQL is not installed (hack/install-system-deps.sh installs it)")


def _run_as() -> pwd.struct_passwd | None:
    """The user the server runs as when we are root (PostgreSQL will not run as root)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise AssertionError("running as root and neither a postgres nor a nobody user exists")


@dataclass
class PostgresServer:
    """One PostgreSQL cluster in its own temp folder. `settings` are passed as `-c` options."""

    port: int = field(default_factory=free_port)
    settings: Mapping[str, str] = field(default_factory=lambda: dict(FAST))
    dir: Path | None = None
    password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    proc: subprocess.Popen[bytes] | None = None

    def dsn(self, dbname: str = "postgres") -> str:
        return (f"host=127.0.0.1 port={self.port} dbname={dbname} user={SUPERUSER} "
                f"password={self.password} connect_timeout=5")

    def _as_owner(self) -> dict[str, Any]:
        user = _run_as()
        if user is None:
            return {}
        return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}

    def start(self, timeout: float = 60) -> None:
        bins = bindir()
        user = _run_as()
        self.dir = Path(tempfile.mkdtemp(prefix="videojob-pg-"))
        data, pwfile = self.dir / "data", self.dir / "pwfile"
        pwfile.write_text(self.password + "\n")
        pwfile.chmod(0o600)
        if user is not None:
            for path in (self.dir, pwfile):
                os.chown(path, user.pw_uid, user.pw_gid)
        init = subprocess.run(
            [str(bins / "initdb"), "-D", str(data), "-U", SUPERUSER, f"--pwfile={pwfile}",
             "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-instructions"],
            capture_output=True, text=True, check=False, cwd=self.dir, **self._as_owner())
        pwfile.unlink()
        if init.returncode != 0:
            raise AssertionError(f"initdb failed: {init.stderr[-2000:]}")
        self._run(timeout)

    def _run(self, timeout: float) -> None:
        """Starts the server on the data folder initdb made (again, after `halt`)."""
        assert self.dir is not None
        bins, data = bindir(), self.dir / "data"
        options = {"listen_addresses": "127.0.0.1", "port": str(self.port),
                   # The socket is in the data folder (mode 0700): no one else reaches it.
                   "unix_socket_directories": str(data), **self.settings}
        argv = [str(bins / "postgres"), "-D", str(data)]
        for key, value in options.items():
            argv += ["-c", f"{key}={value}"]
        log = (self.dir / "server.log").open("ab")
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                     cwd=self.dir, **self._as_owner())
        log.close()
        proc = self.proc

        def accepts() -> bool:
            if proc.poll() is not None:
                return True  # died: stop waiting, fail below
            with psycopg.connect(self.dsn(), connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return True

        wait_until(accepts, timeout, "PostgreSQL to accept connections", interval=0.1)
        if proc.poll() is not None:
            raise AssertionError(f"postgres exited with {proc.returncode}: {self.log()[-2000:]}")

    def halt(self, grace: float = 30) -> None:
        """Stops the server (a fast shutdown), keeping its data: `resume` starts it again on the
        same port, as a database restarted by its administrator."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def resume(self, timeout: float = 60) -> None:
        self._run(timeout)

    def log(self) -> str:
        path = self.dir / "server.log" if self.dir else None
        return path.read_text(errors="replace") if path and path.exists() else ""

    def create_database(self, name: str) -> str:
        """A new, empty database; its DSN."""
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.dsn(name)

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))

    def stop(self, grace: float = 30) -> None:
        """Fast shutdown (SIGINT: clients disconnected, a clean checkpoint), SIGKILL after
        `grace` seconds; then the folder goes."""
        self.halt(grace)
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None


@contextlib.contextmanager
def running(settings: Mapping[str, str] | None = None) -> Iterator[PostgresServer]:
    """A started server, stopped and removed when the block ends (however it ends)."""
    server = PostgresServer(settings=dict(FAST if settings is None else settings))
    try:
        server.start()
        yield server
    finally:
        server.stop()
