"""Serving behind a TLS-terminating proxy (fast part; the real nginx + Chromium run is in
test_reading_https.py): the public URL's settings, the CSRF check of a login whose browser
sent ``Origin: https://...``, and the security headers (CSP included) on pages AND static files.
"""

from __future__ import annotations

import pytest
from conftest import PASSWORD

from weeke_pipeline.reading.deployment import HSTS_SECONDS, public_url_settings

PUBLIC = "https://reading.example.org"
HOST = "reading.example.org"


@pytest.mark.parametrize(("url", "problem"), [
    ("reading.example.org", "expected https://host"),
    ("ftp://reading.example.org", "expected https://host"),
    ("https://reading.example.org/weeke/", "no path"),
    ("https://u:pw@reading.example.org", "user name or password"),
    ("https://reading.example.org:99999", "Port out of range"),
])
def test_public_url_refuses_what_cannot_be_served(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        public_url_settings(url)


def test_weeke_serve_refuses_a_bad_public_url(tmp_path, capsys) -> None:
    from weeke_pipeline.cli import main

    assert main(["serve", "--public-url", "https://h.example/sub", "--data",
                 str(tmp_path / "d")]) == 2
    assert "no path" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()  # refused before anything was created
    assert main(["serve", "--trusted-proxy", "proxy.example", "--data",
                 str(tmp_path / "d")]) == 2
    assert "expected IP addresses" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_one_trusted_proxy_is_waitress_s_several_are_left_to_the_app() -> None:
    from weeke_pipeline.cli.commands.serve import waitress_proxy_options

    assert waitress_proxy_options(None) == {"clear_untrusted_proxy_headers": True}
    one = waitress_proxy_options("127.0.0.1")
    assert one["trusted_proxy"] == "127.0.0.1" and one["clear_untrusted_proxy_headers"]
    assert "x-forwarded-proto" in one["trusted_proxy_headers"]
    # waitress trusts a single address: a list keeps X-Forwarded-For for the app's own check
    assert waitress_proxy_options("127.0.0.1,10.0.0.0/8") == {
        "clear_untrusted_proxy_headers": False}


def _login(client, *, origin: str, secure: bool):  # type: ignore[no-untyped-def]
    """GET then POST the login form as a browser behind the proxy would (Host forwarded,
    ``Origin`` of the page); ``secure`` = the proxy's https scheme reached the app."""
    client.get("/login/", HTTP_HOST=HOST, secure=secure)
    token = client.cookies["csrftoken"].value
    return client.post("/login/", {"username": "reader1", "password": PASSWORD,
                                   "csrfmiddlewaretoken": token},
                       HTTP_HOST=HOST, HTTP_ORIGIN=origin, secure=secure)


def behind_proxy(public: bool = True):  # type: ignore[no-untyped-def]
    """Settings of ``weeke serve --public-url PUBLIC`` (or, without, the old advice: secure
    cookies only), the public host allowed either way."""
    from django.conf import settings
    from django.test import override_settings

    conf = public_url_settings(PUBLIC) if public else {
        "SESSION_COOKIE_SECURE": True, "CSRF_COOKIE_SECURE": True}
    conf["ALLOWED_HOSTS"] = [*settings.ALLOWED_HOSTS, HOST]
    return override_settings(**conf)


def test_https_login_passes_csrf_only_with_the_public_url(study) -> None:
    """The attack-test finding: secure cookies on, the browser's ``Origin: https://host``,
    the app reached over plain HTTP from the proxy -> 403. With the public URL it logs in;
    a foreign origin is still refused."""
    from django.test import Client

    with behind_proxy(public=False):
        assert _login(Client(enforce_csrf_checks=True), origin=PUBLIC,
                      secure=False).status_code == 403
    with behind_proxy():
        for secure in (False, True):  # proxy scheme not passed / passed (--trusted-proxy)
            response = _login(Client(enforce_csrf_checks=True), origin=PUBLIC, secure=secure)
            assert response.status_code == 302, (secure, response.status_code)
            assert response.cookies["sessionid"]["secure"] is True
        foreign = _login(Client(enforce_csrf_checks=True), origin="https://evil.example",
                         secure=True)
        assert foreign.status_code == 403


SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def _csp(response) -> dict[str, str]:  # type: ignore[no-untyped-def]
    policy = response["Content-Security-Policy"]
    return {d.split(" ", 1)[0]: d.split(" ", 1)[1] for d in
            (p.strip() for p in policy.split(";")) if " " in d}


@pytest.mark.parametrize("path", ["/login/", "/static/reading/form.js",
                                  "/static/vendor/niivue/index.js",
                                  "/static/reading/reading.css"])
def test_pages_and_static_files_carry_the_security_headers(db, path: str) -> None:
    from django.test import Client

    with behind_proxy():
        response = Client().get(path, HTTP_HOST=HOST, secure=True)
    assert response.status_code == 200, path
    for header, value in SECURITY_HEADERS.items():
        assert response[header] == value, (path, header)
    assert response["Strict-Transport-Security"] == f"max-age={HSTS_SECONDS}"
    csp = _csp(response)
    assert csp["default-src"] == "'none'"
    assert csp["script-src"] == "'self'"  # no inline script, no eval
    assert csp["frame-ancestors"] == "'none'" and csp["base-uri"] == "'none'"
    assert "unsafe" not in response["Content-Security-Policy"]
    assert "Access-Control-Allow-Origin" not in response
    if path.endswith(".js"):
        assert response["Content-Type"].startswith("text/javascript")


def test_no_inline_script_or_handler_in_the_templates() -> None:
    """The CSP forbids inline code: a template with one would break silently in browsers."""
    import re
    from pathlib import Path

    import weeke_pipeline.reading as reading

    templates = Path(reading.__file__).parent / "templates"
    for template in templates.rglob("*.html"):
        text = template.read_text()
        assert not re.search(r"\son[a-z]+\s*=", text), f"inline event handler in {template}"
        assert not re.search(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)", text), (
            f"inline script in {template}")
        assert not re.search(r"\sstyle\s*=", text), f"inline style in {template}"


@pytest.mark.parametrize(("name", "fence"), [("nginx-weeke-reading.conf", "nginx"),
                                             ("weeke-reading.service", "ini")])
def test_documented_deployment_files_are_the_shipped_ones(name: str, fence: str) -> None:
    """docs/reading.md shows the shipped nginx site and systemd unit (the nginx file is the one
    test_reading_https.py runs): same directives, comments aside."""
    import re
    from pathlib import Path

    import weeke_pipeline.reading as reading

    def directives(text: str) -> list[str]:
        return [ln.strip() for ln in text.splitlines()
                if ln.strip() and not ln.strip().startswith("#")]

    shipped = (Path(reading.__file__).parent / "deploy" / name).read_text()
    docs = (Path(__file__).resolve().parents[2] / "docs" / "reading.md").read_text()
    blocks = re.findall(rf"```{fence}\n(.*?)```", docs, flags=re.S)
    assert any(directives(b) == directives(shipped) for b in blocks), (
        f"docs/reading.md does not show {name} as shipped")


def test_shipped_systemd_unit_passes_systemd_analyze(tmp_path) -> None:
    """The service unit is valid for systemd (``systemd-analyze verify``; the ExecStart binary
    pointed at this environment's ``weeke``)."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    import weeke_pipeline.reading as reading

    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed")
    weeke = Path(sys.executable).with_name("weeke")
    if not weeke.exists():
        pytest.skip(f"no weeke script beside {sys.executable}")
    unit = (Path(reading.__file__).parent / "deploy" / "weeke-reading.service").read_text()
    assert "/srv/weeke/venv/bin/weeke serve" in unit
    (tmp_path / "weeke-reading.service").write_text(
        unit.replace("/srv/weeke/venv/bin/weeke", str(weeke)))
    proc = subprocess.run([tool, "verify", "--man=no", "weeke-reading.service"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    # a typo in a directive is caught: the check can fail
    (tmp_path / "weeke-reading.service").write_text(
        unit.replace("/srv/weeke/venv/bin/weeke", str(weeke)).replace("Restart=", "Restrat="))
    bad = subprocess.run([tool, "verify", "--man=no", "weeke-reading.service"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert "Restrat" in bad.stderr
