"""The local archive's PostgreSQL (`make operator-up`): Debian's server, its data under
.cluster/postgres/, listening on 127.0.0.1 only (VIDEOJOB_DEV_POSTGRES_PORT, 15432), started as a
marked process of the cluster so `make cluster-down` stops it. Its data outlives the operator
(history is the point), and goes with `make clean`.

The cluster is made once with `initdb` (scram-sha-256, a password of its own kept with mode 0600
beside it) and a `videojob` database; the DSN is written to .cluster/archive/dsn (mode 0600),
where `make operator-up` hands it to the operator and the gateway and `kubectl videojob history`
finds it. PostgreSQL refuses to run as root: as root, the server runs as the `postgres` user
(Debian's package makes it), through setpriv.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
from pathlib import Path

from . import processes
from .processes import Layout

PORT = int(os.environ.get("VIDEOJOB_DEV_POSTGRES_PORT", "15432"))
DATABASE = "videojob"
USER = "videojob"


def bindir() -> Path:
    """initdb and postgres: Debian's newest version (hack/install-system-deps.sh installs it)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"),
                   key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    if (which := shutil.which("postgres")) is not None:
        return Path(which).resolve().parent
    raise RuntimeError("PostgreSQL is not installed (run hack/install-system-deps.sh)")


def dsn_file(layout: Layout) -> Path:
    return layout.root / "archive" / "dsn"


def _owner() -> pwd.struct_passwd | None:
    return pwd.getpwnam("postgres") if os.geteuid() == 0 else None


def _as_owner(cmd: list[str]) -> list[str]:
    user = _owner()
    if user is None:
        return cmd
    return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups",
            *cmd]


def up(layout: Layout) -> str:
    """Starts the server (made first if need be); returns the archive's DSN."""
    home = layout.root / "postgres"
    data, password_file = home / "data", home / "password"
    if not (data / "PG_VERSION").exists():
        home.mkdir(parents=True, exist_ok=True)
        password_file.touch(mode=0o600)
        password_file.write_text(secrets.token_urlsafe(24) + "\n")
        user = _owner()
        if user is not None:
            for path in (home, password_file):
                os.chown(path, user.pw_uid, user.pw_gid)
        subprocess.run(_as_owner([
            str(bindir() / "initdb"), "-D", str(data), "-U", USER, f"--pwfile={password_file}",
            "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-instructions"]),
            check=True, stdout=subprocess.DEVNULL, cwd=home)
    password = password_file.read_text().strip()
    dsn = (f"host=127.0.0.1 port={PORT} dbname={DATABASE} user={USER} password={password} "
           "connect_timeout=5")
    if processes.recorded_pid(layout, "postgres") is None:
        processes.start(layout, "postgres", _as_owner([
            str(bindir() / "postgres"), "-D", str(data), "-c", "listen_addresses=127.0.0.1",
            "-c", f"port={PORT}", "-c", f"unix_socket_directories={data}"]))
    processes.wait_for("PostgreSQL to accept connections",
                       lambda: _accepts(dsn.replace(f"dbname={DATABASE}", "dbname=postgres")),
                       60, layout.logs / "postgres.log")
    _ensure_database(dsn.replace(f"dbname={DATABASE}", "dbname=postgres"))
    path = dsn_file(layout)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(dsn + "\n")
    return dsn


def _accepts(dsn: str) -> bool:
    import psycopg

    with psycopg.connect(dsn, connect_timeout=2) as conn:
        conn.execute("SELECT 1")
    return True


def _ensure_database(dsn: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                        (DATABASE,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{DATABASE}"')
