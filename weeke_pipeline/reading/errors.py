"""Refusals of the reading application (each with the HTTP status the web layer answers with),
and the database-lock check every editing action makes first."""

from __future__ import annotations


class ReadingError(Exception):
    """A refused action; ``status`` is the HTTP status the web layer answers with."""

    status = 400

    def __init__(self, message: str, *, item: str | None = None) -> None:
        super().__init__(message)
        self.item = item


class Locked(ReadingError):
    status = 423


class Conflict(ReadingError):
    status = 409


class Forbidden(ReadingError):
    status = 403


class TooManyFailures(ReadingError):
    """Too many wrong passwords (login or signing) for this user name or address."""

    status = 429


def ensure_unlocked() -> None:
    """Refuse (:class:`Locked`) when the coordinator has locked the reading database."""
    from weeke_pipeline.reading.models import DatabaseLock

    if DatabaseLock.is_locked():
        raise Locked("the reading database is locked by the coordinator: no further edits")
