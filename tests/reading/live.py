"""A real ``weeke serve`` in a child process and a small keep-alive HTTP client for it.

Used by the browser, durability tests and ``benchmarks/bench_reading.py``. The client is the
standard library's ``http.client`` (one persistent connection per simulated user, as a browser
keeps one) with the two cookies Django sets (session, CSRF) handled here: no extra dependency.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

REPO = Path(__file__).resolve().parents[2]
_IMPORT = "from weeke_pipeline.cli import main"
_MAIN = f"import sys; {_IMPORT}; sys.exit(main(sys.argv[1:]))"


def cli_env(**extra: str) -> dict[str, str]:
    """Environment for child ``weeke`` processes: this checkout first on the path, no
    inherited database URL (a test passes ``--database-url`` itself)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)}
    env.pop("WEEKE_DATABASE_URL", None)
    env.pop("DATABASE_URL", None)
    env.update(extra)
    return env


def weeke(*commands: list[str], env: dict[str, str], timeout: float = 300) -> str:
    """Run ``weeke`` with each argument list in turn, in ONE child process (Django starts
    once); the combined stdout. Raises with stderr when a command fails."""
    body = "; ".join(f"main({c!r}) == 0 or sys.exit(1)" for c in commands)
    proc = subprocess.run([sys.executable, "-c", f"import sys; {_IMPORT}; {body}"], env=env,
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"weeke {commands} exited {proc.returncode}:\n{proc.stderr}")
    return proc.stdout


class Server:
    """``weeke serve --port 0`` on the given database; ``url`` once it listens."""

    def __init__(self, db_args: list[str], env: dict[str, str], threads: int | None = None
                 ) -> None:
        extra = ["--threads", str(threads)] if threads else []
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _MAIN, "serve", "--port", "0", *extra, *db_args],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        match = re.match(r"weeke reading app: (http://\S+?)/? ", line)
        if not match:
            self.proc.kill()
            raise RuntimeError(f"weeke serve did not start: {line}{self.proc.stderr.read()}")  # type: ignore[union-attr]
        self.url = match.group(1)

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs (what a crash or an OOM kill does)."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream:
                stream.close()


class Client:
    """One logged-in user: a persistent connection, cookies, CSRF header on POSTs."""

    def __init__(self, url: str, timeout: float = 30) -> None:
        parts = urlsplit(url)
        self.host, self.port, self.timeout = parts.hostname or "127.0.0.1", parts.port, timeout
        self.cookies: dict[str, str] = {}
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        hdrs = dict(headers or {})
        if self.cookies:
            hdrs["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if method == "POST" and "csrftoken" in self.cookies:
            hdrs["X-CSRFToken"] = self.cookies["csrftoken"]
        for attempt in (0, 1):
            try:
                self.conn.request(method, path, body=body, headers=hdrs)
                res = self.conn.getresponse()
                data = res.read()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError):
                # the server closed an idle keep-alive connection: reconnect once
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port,
                                                       timeout=self.timeout)
                if attempt:
                    raise
        for header in res.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(header).items():
                self.cookies[name] = morsel.value
        return res.status, data

    def get(self, path: str) -> tuple[int, bytes]:
        return self.request("GET", path)

    def post_json(self, path: str, payload: Any) -> tuple[int, dict[str, Any]]:
        status, data = self.request("POST", path, json.dumps(payload).encode(),
                                    {"Content-Type": "application/json"})
        return status, json.loads(data or b"{}")

    def login(self, username: str, password: str) -> None:
        self.get("/login/")
        status, _ = self.request(
            "POST", "/login/",
            urlencode({"username": username, "password": password,
                       "csrfmiddlewaretoken": self.cookies["csrftoken"]}).encode(),
            {"Content-Type": "application/x-www-form-urlencoded"})
        if status != 302 or "sessionid" not in self.cookies:
            raise RuntimeError(f"login of {username} failed (HTTP {status})")

    def close(self) -> None:
        self.conn.close()


def wait_until_up(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            Client(url, timeout=2).get("/login/")
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
