"""Session idle expiry without a database write on every request."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

#: a session's expiry is pushed back at most once per this many seconds
REFRESH_S = 60
_KEY = "_weeke_refreshed"


class SessionRefreshMiddleware:
    """Keep a session alive while it is used, writing it at most once a minute.

    Django's ``SESSION_SAVE_EVERY_REQUEST`` writes (and on SQLite fsyncs) the session row on
    every request: half of the write transactions of an autosave. Marking the session modified
    only when the last refresh is older than :data:`REFRESH_S` keeps the idle expiry
    (``SESSION_COOKIE_AGE``, 30 minutes) to within a minute for one write per minute.
    Place after ``SessionMiddleware``.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        session = getattr(request, "session", None)
        if session is not None and not session.is_empty():
            now = int(time.time())
            if now - session.get(_KEY, 0) >= REFRESH_S:
                session[_KEY] = now  # marks it modified: saved with a new expiry
        return response
