"""A real deployment: Debian's nginx terminating TLS (self-signed certificate on the loopback)
in front of ``weeke serve --public-url https://... --trusted-proxy ...``, and Chromium over HTTPS.

nginx runs the shipped site file (``weeke_pipeline/reading/deploy/nginx-weeke-reading.conf``:
only ports, certificate paths and the proxy's source address are changed), unprivileged-style:
config, pid and temp files in a throwaway folder, no system service. ``scripts/services.sh``
installs nginx and exports ``WEEKE_TEST_NGINX``. The reader logs in, sees the three linked
viewers render under the Content-Security-Policy (no violation), an injected inline script is
blocked, and the read is filled and signed. The app records the real client address behind
the proxy, and a forged ``X-Forwarded-For`` helps no one.

Addresses on the loopback (Linux routes all of 127/8): the proxy talks to the app from
127.0.0.2 (the trusted proxy); a client connects from 127.0.0.3, so the address the app
records tells the proxy's and the client's apart.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import socket
import sqlite3
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from live import Server, cli_env, weeke
from test_reading_browser import (
    ARGS,
    CHROMIUM,
    PASSWORD,
    keyboard_read,
    not_blank,
    sign,
    write_case,
)

import weeke_pipeline.reading as reading

pytestmark = pytest.mark.slow

SITE = Path(reading.__file__).parent / "deploy" / "nginx-weeke-reading.conf"
NGINX = os.environ.get("WEEKE_TEST_NGINX") or shutil.which("nginx") or (
    "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
PROXY_ADDR, CLIENT_ADDR = "127.0.0.2", "127.0.0.3"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A throwaway certificate for 127.0.0.1 (EC P-256, 2 days), made by Debian's openssl."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


def site_config(https_port: int, http_port: int, app_port: int, cert: Path, key: Path) -> str:
    """The shipped site file with this test's ports, certificate and proxy source address."""
    text = SITE.read_text()
    subs = [
        (r"listen 80;", f"listen 127.0.0.1:{http_port};"),
        (r"listen 443 ssl http2;", f"listen 127.0.0.1:{https_port} ssl http2;"),
        (r"\n\s*listen \[::\]:\d+[^;]*;", ""),
        (r"server_name reading\.example\.org;", "server_name 127.0.0.1;"),
        (r"ssl_certificate\s+\S+;", f"ssl_certificate {cert};"),
        (r"ssl_certificate_key\s+\S+;", f"ssl_certificate_key {key};"),
        (r"proxy_pass http://127\.0\.0\.1:8765;",
         f"proxy_pass http://127.0.0.1:{app_port};\n        proxy_bind {PROXY_ADDR};"),
    ]
    for pattern, new in subs:
        text, n = re.subn(pattern, new, text)
        assert n, f"{SITE.name} no longer has {pattern!r}"
    return text


def nginx_main_config(folder: Path, site: Path) -> str:
    """A top-level nginx.conf keeping everything in ``folder`` (no /var, /run or /etc writes)."""
    user = "user nobody nogroup;\n" if os.geteuid() == 0 else ""
    temp = "\n".join(f"    {k}_temp_path {folder}/{k}_temp;"
                     for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return f"""{user}worker_processes 1;
daemon off;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 256; }}
http {{
    include /etc/nginx/mime.types;
    access_log {folder}/access.log;
{temp}
    include {site};
}}
"""


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    if NGINX is None:
        pytest.skip("nginx is not installed (scripts/services.sh installs Debian's nginx)")
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (scripts/services.sh installs it)")
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (scripts/services.sh installs it)")
    pytest.importorskip("playwright")
    # nginx's workers must traverse the folder: not pytest's 0700 tmp tree
    folder = Path(tempfile.mkdtemp(prefix="weeke-nginx-"))
    folder.chmod(0o755)
    tmp = tmp_path_factory.mktemp("https")
    data = ["--data", str(tmp / "data")]
    env = cli_env(WEEKE_PASSWORD=PASSWORD)
    weeke(["users", "add", "reader1", "--role", "reader", *data],
          ["users", "add", "reader2", "--role", "reader", *data],
          ["cases", "import", str(write_case(tmp / "study")), *data], env=env)
    https_port, http_port = free_port(), free_port()
    public = f"https://127.0.0.1:{https_port}"
    app = Server([*data, "--public-url", public, "--trusted-proxy", PROXY_ADDR], env)
    cert, key = self_signed(folder)
    site = folder / "site.conf"
    site.write_text(site_config(https_port, http_port, int(app.url.rsplit(":", 1)[1]),
                                cert, key))
    conf = folder / "nginx.conf"
    conf.write_text(nginx_main_config(folder, site))
    nginx = subprocess.Popen([NGINX, "-p", str(folder), "-c", str(conf), "-e",
                              str(folder / "error.log")],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", https_port), timeout=1).close()
                break
            except OSError:
                if nginx.poll() is not None or time.monotonic() > deadline:
                    log = (folder / "error.log").read_text() if (
                        folder / "error.log").exists() else ""
                    raise RuntimeError(f"nginx did not start: {nginx.stdout.read()}{log}"
                                       ) from None  # type: ignore[union-attr]
                time.sleep(0.1)
        yield {"public": public, "http_port": http_port, "app": app.url,
               "db": tmp / "data" / "reading.sqlite3", "cert": cert}
    finally:
        nginx.terminate()
        try:
            nginx.wait(timeout=10)
        except subprocess.TimeoutExpired:
            nginx.kill()
        if nginx.stdout:
            nginx.stdout.close()
        app.stop()
        shutil.rmtree(folder, ignore_errors=True)


def failed_login_address(deployment: dict[str, Any], connection: http.client.HTTPConnection,
                         headers: dict[str, str]) -> str:
    """Post a wrong password for reader2 on ``connection``; the client address the app
    stored with the failure."""
    connection.request("GET", "/login/", headers=headers)
    res = connection.getresponse()
    res.read()
    cookie = res.headers["Set-Cookie"]
    token = re.search(r"csrftoken=([^;]+)", cookie).group(1)  # type: ignore[union-attr]
    origin = deployment["public"] if isinstance(connection, http.client.HTTPSConnection) \
        else deployment["app"]
    connection.request("POST", "/login/", urlencode(
        {"username": "reader2", "password": "wrong-password-1", "csrfmiddlewaretoken": token}),
        headers={**headers, "Cookie": f"csrftoken={token}", "Origin": origin,
                 "Content-Type": "application/x-www-form-urlencoded"})
    res = connection.getresponse()
    res.read()
    assert res.status == 200, res.status  # the form again, with an error
    with sqlite3.connect(deployment["db"]) as db:
        return db.execute("SELECT address FROM reading_loginfailure "
                          "ORDER BY id DESC LIMIT 1").fetchone()[0]


def test_real_client_address_behind_the_proxy(deployment: dict[str, Any]) -> None:
    forged = {"X-Forwarded-For": "203.0.113.9"}
    # through nginx from 127.0.0.3: the app records the client, not the proxy, nor the forgery
    context = ssl.create_default_context(cafile=deployment["cert"])
    port = int(deployment["public"].rsplit(":", 1)[1])
    via_proxy = http.client.HTTPSConnection("127.0.0.1", port, context=context,
                                            source_address=(CLIENT_ADDR, 0), timeout=30)
    assert failed_login_address(deployment, via_proxy, forged) == CLIENT_ADDR
    via_proxy.close()
    # straight to the app, bypassing the proxy: the forged header is dropped
    host, app_port = deployment["app"].removeprefix("http://").rsplit(":", 1)
    direct = http.client.HTTPConnection(host, int(app_port), source_address=(CLIENT_ADDR, 0),
                                        timeout=30)
    assert failed_login_address(deployment, direct, forged) == CLIENT_ADDR
    direct.close()
    # plain HTTP on the proxy redirects to HTTPS
    plain = http.client.HTTPConnection("127.0.0.1", deployment["http_port"], timeout=30)
    plain.request("GET", "/worklist/")
    res = plain.getresponse()
    assert res.status == 301 and res.headers["Location"].startswith("https://")
    plain.close()


CSP_LISTENER = """
window.__csp = [];
document.addEventListener('securitypolicyviolation',
  (e) => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));
"""


def test_login_read_and_sign_over_https(deployment: dict[str, Any]) -> None:
    from playwright.sync_api import expect, sync_playwright

    public = deployment["public"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        context = browser.new_context(ignore_https_errors=True,
                                      viewport={"width": 1600, "height": 1000})
        context.add_init_script(CSP_LISTENER)
        page = context.new_page()
        response = page.goto(public + "/")
        assert page.url == public + "/login/?next=/"
        assert response.headers["strict-transport-security"].startswith("max-age=")
        page.fill("#id_username", "reader1")
        page.fill("#id_password", PASSWORD)
        page.keyboard.press("Enter")  # a POST with Origin: https://127.0.0.1:<port>
        page.wait_for_url("**/worklist/")
        cookies = {c["name"]: c for c in context.cookies()}
        assert cookies["sessionid"]["secure"] and cookies["csrftoken"]["secure"]

        page.click("table.list a")
        page.wait_for_selector("body[data-viewers-loaded='3']", timeout=60_000)
        for n in range(3):  # NiiVue renders under the CSP
            lit = not_blank(page.locator("canvas").nth(n).screenshot())
            assert lit > 0.05, f"viewer {n} rendered (almost) nothing ({lit:.3f} lit)"
        assert page.evaluate("() => window.__csp") == []
        # an injected inline script (what an XSS would add) does not run
        page.evaluate("""() => { const s = document.createElement('script');
            s.textContent = 'window.__inlineRan = true'; document.body.appendChild(s); }""")
        page.wait_for_function("() => window.__csp.length > 0")
        assert page.evaluate("() => window.__inlineRan") is None
        assert page.evaluate("() => window.__csp")[0].startswith("script-src")

        keyboard_read(page, extent=2, bilateral=True, total="4")
        sign(page)
        expect(page.locator("#revise-open")).to_be_visible()
        browser.close()
    with sqlite3.connect(deployment["db"]) as db:
        assert db.execute("SELECT status FROM reading_read").fetchall() == [("signed",)]
