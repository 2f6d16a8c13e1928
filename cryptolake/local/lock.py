"""One ``cryptolake up`` per state folder: an exclusive lock on a file there, which dies with its process."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from cryptolake.local.procs import ServiceError


class StateLock:
    """An exclusive ``flock`` on ``path``, which holds the holder's pid.

    The kernel drops a flock when the file is closed, so when its process ends however it ends (kill -9 included),
    and children do not inherit it (Python opens files non-inheritable): what a crashed ``up`` left running does not
    hold it. The file stays when the lock is released; deleting it would let two processes lock different files.
    """

    def __init__(self, path: Path, state: Path) -> None:
        self.path = path
        self.state = state
        self._file: BinaryIO | None = None

    def acquire(self) -> None:
        """Take the lock, or raise :class:`ServiceError` naming the process that holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        file = self.path.open("a+b")  # not truncated before it is ours: the holder's pid stays readable
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _pid_in(file)
            file.close()
            raise ServiceError(
                f"cryptolake up already runs for {self.state} (pid {holder or 'unknown'}): stop it first "
                "(Ctrl-C there, or `cryptolake down`), or set CRYPTOLAKE_LOCAL_HOME to another folder"
            ) from None
        file.truncate(0)
        file.write(f"{os.getpid()}\n".encode())
        file.flush()
        self._file = file

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # which drops the lock
            self._file = None

    def holder(self) -> int | None:
        """The pid of the process holding the lock, or None while nobody does."""
        try:
            file = self.path.open("rb")
        except FileNotFoundError:
            return None
        with file:
            try:
                # Shared, and released on close: a probe that does not keep an `up` from starting.
                fcntl.flock(file, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return _pid_in(file)
            return None

    def __enter__(self) -> StateLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.release()


def _pid_in(file: BinaryIO) -> int | None:
    file.seek(0)
    text = file.read().decode(errors="replace").strip()
    return int(text) if text.isdigit() else None
