"""Serving the reading app at a public URL, behind a TLS-terminating reverse proxy.

A site serves ``weeke serve`` on the loopback behind a reverse proxy (nginx) that holds the
certificate. Three things must then agree (docs/reading.md, "Deployment behind HTTPS"):

* **the public origin** (``--public-url https://reading.example.org`` or ``$WEEKE_PUBLIC_URL``):
  its host is allowed (``ALLOWED_HOSTS``), it is a trusted CSRF origin (the browser's ``Origin:
  https://...`` header must match it, whatever ``Host`` the proxy forwards) and, for ``https``,
  the session and CSRF cookies are ``Secure`` and HSTS is sent;
* **the proxy's headers** (``--trusted-proxy 127.0.0.1`` or ``$WEEKE_TRUSTED_PROXIES``): waitress
  (the WSGI server) takes ``X-Forwarded-For/-Proto/-Host/-Port`` from that address only, so
  ``REMOTE_ADDR`` is the real client (per-address login throttle, audit) and the request scheme
  is ``https``; the same headers from any other peer are dropped. Waitress's own, maintained
  implementation is used rather than parsing the headers in Django.
* **the Content-Security-Policy** (:data:`CONTENT_SECURITY_POLICY`, sent by django-csp on every
  response, static files included): only the app's own scripts, styles, images and requests.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from csp.constants import NONE, SELF

#: HSTS max-age sent over HTTPS (one year; no ``includeSubDomains``: other sites on the
#: hospital's domain are not ours to pin)
HSTS_SECONDS = 365 * 24 * 3600

#: waitress forwards these headers from the trusted proxy (and strips them from anyone else)
PROXY_HEADERS = frozenset({"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host",
                           "x-forwarded-port"})

#: Content-Security-Policy of every response (django-csp's format). No inline script or style,
#: no eval, nothing from another origin, no framing. NiiVue needs only ``'self'`` for its module
#: scripts and ``fetch`` of the case images; WebAssembly compilation (``'wasm-unsafe-eval'``)
#: stays blocked (not needed for the gzipped NIfTI images the app serves: Chromium reports no
#: violation while the viewers load, tests/reading/test_reading_https.py).
#: ``data:`` images: NiiVue's font atlas (without it no viewer loads: checked in Chromium).
CONTENT_SECURITY_POLICY: dict[str, Any] = {
    "DIRECTIVES": {
        "default-src": [NONE],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "font-src": [SELF],
        "form-action": [SELF],
        "base-uri": [NONE],
        "object-src": [NONE],
        "frame-ancestors": [NONE],
    },
}


def public_url_settings(url: str) -> dict[str, Any]:
    """Django settings for serving at ``url`` (``https://host[:port]``, no path).

    Returns ``ALLOWED_HOSTS`` (the host alone, to add), ``CSRF_TRUSTED_ORIGINS`` (the origin),
    ``WEEKE_PUBLIC_URL`` and, for https, secure cookies and HSTS. Raises ``ValueError`` naming
    what is wrong with ``url``.

    >>> s = public_url_settings("https://Reading.Example.org:8443/")
    >>> s["CSRF_TRUSTED_ORIGINS"], s["ALLOWED_HOSTS"], s["SESSION_COOKIE_SECURE"]
    (['https://reading.example.org:8443'], ['reading.example.org'], True)
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"public URL {url!r}: expected https://host[:port]")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"public URL {url!r}: serve the app at the root of its host "
                         "(no path; a sub-path is not supported)")
    if parts.username or parts.password:
        raise ValueError(f"public URL {url!r}: must not contain a user name or password")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"public URL {url!r}: {exc}") from None
    host = parts.hostname.lower()
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != {"http": 80, "https": 443}[scheme]:
        netloc += f":{port}"
    origin = f"{scheme}://{netloc}"
    secure = scheme == "https"
    settings: dict[str, Any] = {
        "WEEKE_PUBLIC_URL": origin,
        "ALLOWED_HOSTS": [f"[{host}]" if ":" in host else host],
        "CSRF_TRUSTED_ORIGINS": [origin],
    }
    if secure:
        settings.update({
            "SESSION_COOKIE_SECURE": True,
            "CSRF_COOKIE_SECURE": True,
            "SECURE_HSTS_SECONDS": HSTS_SECONDS,
        })
    return settings
