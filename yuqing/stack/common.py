"""What the parts of the stack share: its error, its data directory and its lock, ports,
child processes."""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit, urlunsplit


class StackError(RuntimeError):
    """A server of the stack could not be started; the message says why and what to look at."""


def prepare_dir(path: Path) -> Path:
    path = Path(path).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as err:
        return f"(cannot read {path}: {err})"
    return "\n".join(text.splitlines()[-lines:]) or "(empty)"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (for tests that run servers side by side)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def check_port_free(host: str, port: int, what: str) -> None:
    # Without this, a server already on the port would answer our readiness probe and we would
    # mistake it for the one we just started.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the server itself (Go) does, so connections of a previous run in TIME_WAIT do not
        # count as "in use"; a live listener still does.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as err:
            if err.errno != errno.EADDRINUSE:
                raise
            raise StackError(
                f"{what} port {host}:{port} is already in use — is another Temporal server "
                "running? Stop it, pick other ports, or set TEMPORAL_ADDRESS to use it."
            ) from err


def die_with_parent() -> Callable[[], None] | None:
    # Having left our session, the server would outlive a SIGKILLed stack and keep the port busy;
    # Linux can deliver it SIGTERM when its parent dies. (The parent is the thread that forks,
    # i.e. the event loop's thread, which lives as long as the server is wanted.)
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1

    def preexec() -> None:
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)

    return preexec


def redact(url: str) -> str:
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


class DataDirLock:
    """One stack per data directory: an exclusive lock on `<data dir>/stack.lock`, held while
    the stack runs and released by the kernel however the process ends (SIGKILL included).

    Taken before anything else is started or touched, so a second stack on the same directory
    leaves the first one's PostgreSQL, Temporal and logs alone."""

    NAME = "stack.lock"

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / self.NAME
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        file = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            file.seek(0)
            holder = file.read().strip() or "another process"
            file.close()
            if err.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            raise StackError(
                f"another Yuqing stack ({holder}) is already running on the data directory "
                f"{self.path.parent}; it was left as it is. Stop that one first (Ctrl-C in its "
                "terminal), or give this one another --data-dir (or YUQING_DATA_DIR)."
            ) from err
        file.seek(0)
        file.truncate()
        file.write(f"pid {os.getpid()}, started {time.strftime('%Y-%m-%d %H:%M:%S %z')}\n")
        file.flush()
        self._file = file

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing the descriptor releases the lock
            self._file = None
