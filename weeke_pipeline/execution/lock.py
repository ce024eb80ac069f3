"""One ``weeke run`` at a time per output and work folder: a lock file naming the run.

Two drivers on the same work folder submit the same nodes twice and corrupt each other's
results (Nipype's cache has no lock of its own), so a run takes ``.weeke-run.lock`` in its
output folder and in its work folder before it writes anything. The lock file holds the
driver's host, pid, user, start time and command line, so the refusal names the other run.

Why not ``fcntl.flock``/``filelock``: advisory locks are not reliable on the NFS/Lustre/GPFS
work folders of clusters, and a lock held by a dead driver on another login node must be
recognisable. The lock is therefore a file created with ``O_CREAT | O_EXCL`` (atomic on NFSv3+)
whose modification time the driver refreshes (a heartbeat every :data:`HEARTBEAT` seconds). It
is *stale*, and taken over with a warning, when its process is gone on this host, or when its
heartbeat is older than :data:`STALE_AFTER` (a driver on another host that stopped).
"""

from __future__ import annotations

import contextlib
import getpass
import json
import logging
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger("weeke.execution")

LOCK_NAME = ".weeke-run.lock"
#: seconds between heartbeats (the lock file's mtime) of a running driver
HEARTBEAT = 30.0
#: a lock whose heartbeat is older than this (seconds) belongs to a driver that stopped
STALE_AFTER = 600.0


class LockedError(RuntimeError):
    """Another ``weeke run`` holds the folder (the message names it)."""


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no LOGNAME/USER and no passwd entry (containers)
        return f"uid {os.getuid()}"


def _start_ticks(pid: int) -> str:
    """The process's start time (clock ticks since boot, /proc/PID/stat field 22), or ''
    where /proc has none: tells a reused pid from the process that wrote the lock."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        return stat[stat.rindex(b")") + 2:].split()[19].decode()
    except (OSError, ValueError, IndexError):
        return ""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


@dataclass
class LockInfo:
    """Who holds a lock (as written in the lock file)."""

    host: str
    pid: int
    user: str
    started: str
    command: str
    path: Path
    age: float  # seconds since the last heartbeat
    pid_start: str = ""

    def describe(self) -> str:
        return (f"pid {self.pid} on host {self.host} (user {self.user}, started "
                f"{self.started}, command: {self.command})")

    def stale(self) -> str:
        """Why this lock is stale, or '' while its driver may still run."""
        if self.host == socket.gethostname():
            if not _pid_alive(self.pid):
                return f"its process {self.pid} is no longer running on {self.host}"
            if self.pid_start and _start_ticks(self.pid) not in ("", self.pid_start):
                return f"its process {self.pid} ended (the pid now belongs to another process)"
            return ""
        if self.age > STALE_AFTER:
            return f"no heartbeat for {self.age / 60:.0f} min"
        return ""


def read_lock(path: Path) -> LockInfo | None:
    """The lock at ``path``, or None when there is none (or it vanished meanwhile)."""
    try:
        raw = path.read_text()
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return None
    try:
        doc = json.loads(raw)
        return LockInfo(host=str(doc["host"]), pid=int(doc["pid"]), user=str(doc["user"]),
                        started=str(doc["started"]), command=str(doc["command"]), path=path,
                        age=age, pid_start=str(doc.get("pid_start", "")))
    except (ValueError, KeyError, TypeError):  # half-written or foreign: old enough = stale
        return LockInfo(host="?", pid=-1, user="?", started="?", command="?", path=path,
                        age=age)


class RunLock:
    """Context manager holding the run lock on one or more folders.

    >>> with RunLock([out, work]):       # doctest: +SKIP
    ...     run()
    """

    def __init__(self, folders: list[Path], *, what: str = "weeke run") -> None:
        seen: list[Path] = []
        for folder in folders:
            p = Path(folder).resolve()
            if p not in seen:
                seen.append(p)
        self.paths = [p / LOCK_NAME for p in seen]
        self.what = what
        self.stale_locks: list[LockInfo] = []  # taken over (their run's jobs may still run)
        self._held: list[Path] = []
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def _record(self) -> bytes:
        return (json.dumps({
            "host": socket.gethostname(), "pid": os.getpid(),
            "pid_start": _start_ticks(os.getpid()), "user": _user(),
            "started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
            "command": " ".join(["weeke", *sys.argv[1:]])[:300] if sys.argv else self.what,
        }) + "\n").encode()

    def _take(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                other = read_lock(path)
                if other is None:
                    continue  # released meanwhile: try again
                if other.pid == os.getpid() and other.host == socket.gethostname():
                    return  # this process holds it already (nested use): not ours to release
                if other.host == "?" and other.age < HEARTBEAT:
                    time.sleep(0.2)  # being written by another driver right now
                    continue
                reason = other.stale()
                if other.host == "?":
                    reason = reason or "it is unreadable"
                if not reason:
                    raise LockedError(
                        f"{path.parent} is in use by another {self.what}: {other.describe()}. "
                        "Wait for it to finish or stop it; two runs on the same folder would "
                        f"corrupt each other's results. (Lock file: {path})") from None
                log.warning("taking over the lock of an earlier run (%s): %s", reason,
                            other.describe())
                self.stale_locks.append(other)
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                continue
            with os.fdopen(fd, "wb") as f:
                f.write(self._record())
            self._held.append(path)
            return
        raise LockedError(f"could not take the lock {path} (another run keeps taking it)")

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT):
            for path in self._held:
                with contextlib.suppress(OSError):
                    os.utime(path)

    def acquire(self) -> RunLock:
        try:
            for path in self.paths:
                self._take(path)
        except BaseException:
            self.release()
            raise
        self._beat = threading.Thread(target=self._heartbeat, name="weeke-lock-heartbeat",
                                      daemon=True)
        self._beat.start()
        return self

    def release(self) -> None:
        self._stop.set()
        for path in self._held:
            other = read_lock(path)
            if other is not None and other.pid == os.getpid() and \
                    other.host == socket.gethostname():
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        self._held.clear()

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()
