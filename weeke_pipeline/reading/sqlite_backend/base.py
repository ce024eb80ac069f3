"""Django's SQLite backend, with the server's write transactions queued on a process lock.

SQLite allows one writer at a time. Django opens write transactions with ``BEGIN IMMEDIATE``
(settings.py); a second thread's BEGIN then waits in SQLite's busy handler, which polls with
sleeps growing to 100 ms, so under 20 concurrent autosaving readers a waiting save often
sleeps long after the lock was released (medians of 200-350 ms, p95 up to 1 s, measured by
benchmarks/bench_reading.py). The threads of one ``weeke serve`` process therefore queue on a
:class:`threading.Lock` per database file, taken before ``BEGIN`` and released after
``COMMIT``/``ROLLBACK``: a waiting save starts as soon as the previous one commits. Other
processes (CLI commands) still meet the busy handler (``timeout`` in settings.py). Reads are
not queued (WAL: readers never wait for the writer).
"""

from __future__ import annotations

import threading

from django.db import OperationalError
from django.db.backends.sqlite3 import base

_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def _lock_for(name: str) -> threading.Lock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(str(name), threading.Lock())


class DatabaseWrapper(base.DatabaseWrapper):
    _holds_write_lock = False

    def _release_write_lock(self) -> None:
        if self._holds_write_lock:
            self._holds_write_lock = False
            _lock_for(self.settings_dict["NAME"]).release()

    def _start_transaction_under_autocommit(self) -> None:
        timeout = float(self.settings_dict.get("OPTIONS", {}).get("timeout", 20))
        if not _lock_for(self.settings_dict["NAME"]).acquire(timeout=timeout):
            raise OperationalError(f"database is locked (waited {timeout:.0f} s for the "
                                   "other saves of this server)")
        self._holds_write_lock = True
        try:
            super()._start_transaction_under_autocommit()
        except BaseException:
            self._release_write_lock()
            raise

    def _commit(self) -> None:
        super()._commit()
        # a failed COMMIT leaves the transaction open: Django rolls back next (or closes)
        self._release_write_lock()

    def _rollback(self) -> None:
        try:
            super()._rollback()
        finally:
            self._release_write_lock()

    def _close(self) -> None:
        try:
            super()._close()
        finally:
            self._release_write_lock()
