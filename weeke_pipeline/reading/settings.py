"""Django settings for the reading app, built from arguments or the environment.

Environment: ``WEEKE_DATA_DIR`` (data folder: SQLite database, de-identified images, secret key),
``WEEKE_DATABASE_URL`` or ``DATABASE_URL`` (``sqlite:///path`` or
``postgresql://user:password@host:port/name``; a unix socket as ``?host=/dir``),
``WEEKE_ALLOWED_HOSTS`` (comma separated), ``WEEKE_SECURE_COOKIES=1`` behind HTTPS,
``WEEKE_TRUSTED_PROXIES`` (comma separated addresses or networks of reverse proxies whose
``X-Forwarded-For`` gives the client address for the login limits), ``WEEKE_AUDIT_KEY`` (the
audit chain key, else ``<data>/audit_key``),
``WEEKE_PUBLIC_URL`` (``https://host[:port]`` behind a TLS proxy: allowed host, trusted CSRF
origin, secure cookies, HSTS; see :mod:`weeke_pipeline.reading.deployment`).
As a settings module (``DJANGO_SETTINGS_MODULE=weeke_pipeline.reading.settings``) it reads the
environment; :func:`weeke_pipeline.reading.setup` calls :func:`build_settings` directly.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from weeke_pipeline.reading.deployment import CONTENT_SECURITY_POLICY, public_url_settings

PKG = Path(__file__).resolve().parent
DEFAULT_DATA_DIR = "weeke-reading"


def parse_database_url(url: str, data_dir: Path) -> dict[str, Any]:
    """Django DATABASES entry for a ``sqlite:`` or ``postgres(ql):`` URL.

    Written here (20 lines) rather than adding dj-database-url: only these two schemes matter.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.split("+")[0]
    if scheme == "sqlite":
        path = unquote(parts.path)
        if path.startswith("/") and parts.netloc == "":
            path = path[1:] if path.startswith("//") else path  # sqlite:////abs -> /abs
        db_path = Path(path) if path else data_dir / "reading.sqlite3"
        return _sqlite(db_path if db_path.is_absolute() else data_dir / db_path)
    if scheme in ("postgres", "postgresql"):
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path.lstrip("/")) or "weeke",
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": query.pop("host", None) or (parts.hostname or ""),
            "PORT": str(parts.port or query.pop("port", "") or ""),
            "OPTIONS": query,
            "CONN_MAX_AGE": 60,
            "CONN_HEALTH_CHECKS": True,
        }
    raise ValueError(f"unsupported database URL scheme {parts.scheme!r} (use sqlite or postgresql)")


def _sqlite(path: Path) -> dict[str, Any]:
    return {
        # Django's SQLite backend plus an in-process queue for write transactions
        "ENGINE": "weeke_pipeline.reading.sqlite_backend",
        "NAME": str(path),
        "OPTIONS": {
            # WAL: readers never block the writer; IMMEDIATE: writers queue instead of failing
            # with "database is locked" on lock upgrade; FULL sync: an acknowledged save survives
            # a killed server.
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        },
    }


def private_folder(path: Path) -> Path:
    """Create ``path`` (and missing parents) readable by the owner only (0700); a folder that
    exists already keeps its mode (the administrator chose it)."""
    if not path.exists():
        if not path.parent.exists():
            private_folder(path.parent)
        path.mkdir(mode=0o700, exist_ok=True)
        os.chmod(path, 0o700)  # mkdir's mode is filtered by the umask
    return path


def private_file(path: Path) -> None:
    """Create an empty ``path`` with mode 0600 if it does not exist (SQLite then gives its
    -wal and -shm files the same mode)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _secret_key(data_dir: Path) -> str:
    if os.environ.get("WEEKE_SECRET_KEY"):
        return os.environ["WEEKE_SECRET_KEY"]
    key_file = data_dir / "secret_key"
    if not key_file.exists():
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(50))
    return key_file.read_text().strip()


def build_settings(data_dir: str | os.PathLike[str] | None = None,
                   database_url: str | None = None) -> dict[str, Any]:
    """All Django settings as a dict; creates the data folder on first use."""
    folder = Path(data_dir or os.environ.get("WEEKE_DATA_DIR") or DEFAULT_DATA_DIR).resolve()
    private_folder(folder)
    url = database_url or os.environ.get("WEEKE_DATABASE_URL") or os.environ.get("DATABASE_URL")
    database = parse_database_url(url, folder) if url else _sqlite(folder / "reading.sqlite3")
    if database["ENGINE"].endswith("sqlite_backend"):
        private_file(Path(database["NAME"]))
    hosts = os.environ.get("WEEKE_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]").split(",")
    secure = os.environ.get("WEEKE_SECURE_COOKIES") == "1"
    public = public_url_settings(os.environ["WEEKE_PUBLIC_URL"]) \
        if os.environ.get("WEEKE_PUBLIC_URL") else {}
    hosts += public.pop("ALLOWED_HOSTS", [])
    conf = {
        "WEEKE_DATA_DIR": folder,
        "SECRET_KEY": _secret_key(folder),
        "DEBUG": False,
        "ALLOWED_HOSTS": [h.strip() for h in hosts if h.strip()],
        "INSTALLED_APPS": [
            "django.contrib.admin",
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "django.contrib.messages",
            "django.contrib.staticfiles",
            "csp",
            "weeke_pipeline.reading.apps.ReadingConfig",
        ],
        "MIDDLEWARE": [
            "django.middleware.security.SecurityMiddleware",
            "csp.middleware.CSPMiddleware",
            "django.middleware.clickjacking.XFrameOptionsMiddleware",
            "whitenoise.middleware.WhiteNoiseMiddleware",
            "django.contrib.sessions.middleware.SessionMiddleware",
            "weeke_pipeline.reading.middleware.SessionRefreshMiddleware",
            "django.middleware.common.CommonMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "django.contrib.messages.middleware.MessageMiddleware",
        ],
        "ROOT_URLCONF": "weeke_pipeline.reading.urls",
        "TEMPLATES": [{
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "DIRS": [],
            "APP_DIRS": True,
            "OPTIONS": {"context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]},
        }],
        "WSGI_APPLICATION": "weeke_pipeline.reading.wsgi.application",
        "DATABASES": {"default": database},
        "DEFAULT_AUTO_FIELD": "django.db.models.BigAutoField",
        "AUTH_PASSWORD_VALIDATORS": [
            # the password may not resemble the user name
            {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
            {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
             "OPTIONS": {"min_length": 10}},
            {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
            {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
        ],
        "LANGUAGE_CODE": "en-gb",
        "TIME_ZONE": "UTC",
        "USE_I18N": False,
        "USE_TZ": True,
        "STATIC_URL": "/static/",
        "LOGIN_URL": "/login/",
        "LOGIN_REDIRECT_URL": "/",
        # Sessions expire after 30 minutes without a request (autosave keeps an open form alive;
        # SessionRefreshMiddleware pushes the expiry back at most once a minute) and when the
        # browser closes.
        "SESSION_COOKIE_AGE": 30 * 60,
        "SESSION_EXPIRE_AT_BROWSER_CLOSE": True,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Strict",
        "CSRF_COOKIE_SAMESITE": "Strict",
        "SESSION_COOKIE_SECURE": secure,
        "CSRF_COOKIE_SECURE": secure,
        "X_FRAME_OPTIONS": "DENY",
        "SECURE_CONTENT_TYPE_NOSNIFF": True,
        "SECURE_REFERRER_POLICY": "same-origin",
        "DATA_UPLOAD_MAX_MEMORY_SIZE": 1_000_000,
        "LOGGING": {
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {"console": {"class": "logging.StreamHandler"}},
            "root": {"handlers": ["console"], "level": "WARNING"},
        },
        # Login throttling: failures per username / per client address within the window.
        "WEEKE_LOGIN_WINDOW_S": 15 * 60,
        "WEEKE_LOGIN_MAX_FAILURES_USER": 5,
        "WEEKE_LOGIN_MAX_FAILURES_IP": 20,
        # Reverse proxies whose X-Forwarded-For is believed for the client address (addresses
        # or networks); empty: REMOTE_ADDR is the client (reading/throttle.py).
        "WEEKE_TRUSTED_PROXIES": [p.strip() for p in
                                  os.environ.get("WEEKE_TRUSTED_PROXIES", "").split(",")
                                  if p.strip()],
        # Static files through WhiteNoise *inside* the middleware stack (after the security,
        # CSP and framing middleware): they get the same security headers as the pages.
        # Finders: served straight from the installed package, no collectstatic step.
        "WHITENOISE_USE_FINDERS": True,
        "WHITENOISE_AUTOREFRESH": False,
        "WHITENOISE_ALLOW_ALL_ORIGINS": False,  # no CORS header: only this site uses them
        "CONTENT_SECURITY_POLICY": CONTENT_SECURITY_POLICY,
        "WEEKE_PUBLIC_URL": None,
        "CSRF_TRUSTED_ORIGINS": [],
    }
    conf.update(public)
    return conf


if os.environ.get("DJANGO_SETTINGS_MODULE") == __name__:
    globals().update(build_settings())
