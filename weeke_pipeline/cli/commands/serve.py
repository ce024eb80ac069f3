"""``weeke serve``: run the reading web application under waitress (production WSGI server)."""

from __future__ import annotations

import argparse
import os

from weeke_pipeline.cli.commands._reading import add_db_arguments, setup
from weeke_pipeline.reading.deployment import PROXY_HEADERS

HELP = "serve the blinded reading web application (migrates the database first)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 = any)")
    parser.add_argument("--threads", type=int, default=8, help="worker threads (default 8)")
    parser.add_argument("--public-url", default=os.environ.get("WEEKE_PUBLIC_URL"),
                        metavar="URL",
                        help="the address users open, behind a TLS reverse proxy "
                        "(https://reading.example.org): allowed host, trusted CSRF origin, "
                        "secure cookies, HSTS; default $WEEKE_PUBLIC_URL")
    parser.add_argument("--trusted-proxy", default=os.environ.get("WEEKE_TRUSTED_PROXIES"),
                        metavar="ADDR",
                        help="address of the reverse proxy (e.g. 127.0.0.1) whose "
                        "X-Forwarded-For/-Proto/-Host/-Port headers give the real client "
                        "address and scheme; those headers from anyone else are dropped; "
                        "default $WEEKE_TRUSTED_PROXIES, else none")
    add_db_arguments(parser)


def waitress_proxy_options(trusted: str | None) -> dict[str, object]:
    """Waitress's forwarded-header handling for ``--trusted-proxy``.

    One proxy address (the usual nginx on the same machine): waitress takes
    ``X-Forwarded-For/-Proto/-Host/-Port`` from that peer only (``REMOTE_ADDR`` becomes the
    client, the scheme https) and drops them from any other. Several addresses or networks:
    waitress trusts one address only, so it passes ``X-Forwarded-For`` through untouched for
    the app's own check (:func:`weeke_pipeline.reading.throttle.client_address`, which skips
    the trusted hops) and the scheme stays http (``--public-url`` still makes the CSRF check
    pass; send HSTS from the proxy). No proxy: the headers are dropped from everyone.
    """
    import ipaddress

    proxies = [p.strip() for p in (trusted or "").split(",") if p.strip()]
    if not proxies:
        return {"clear_untrusted_proxy_headers": True}
    try:
        networks = [ipaddress.ip_network(p.strip("[]"), strict=False) for p in proxies]
    except ValueError:
        from weeke_pipeline.errors import UsageError

        raise UsageError(f"--trusted-proxy {trusted!r}: expected IP addresses or networks, "
                         "comma separated") from None
    single = (str(networks[0].network_address)
              if len(networks) == 1 and networks[0].num_addresses == 1 else None)
    if single:
        return {"trusted_proxy": single, "trusted_proxy_count": 1,
                "trusted_proxy_headers": set(PROXY_HEADERS),
                "clear_untrusted_proxy_headers": True}
    return {"clear_untrusted_proxy_headers": False}


def run(args: argparse.Namespace) -> int:
    from weeke_pipeline.errors import UsageError
    from weeke_pipeline.reading.deployment import public_url_settings

    waitress_proxy_options(args.trusted_proxy)  # a clear error before anything starts
    if args.public_url:
        try:
            public_url_settings(args.public_url)  # a clear error before anything starts
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
        os.environ["WEEKE_PUBLIC_URL"] = args.public_url  # read by the settings (as wsgi.py does)
    if args.trusted_proxy:
        # the same setting for the app (throttle, audit: weeke_pipeline/reading/throttle.py)
        os.environ["WEEKE_TRUSTED_PROXIES"] = args.trusted_proxy
    setup(args)
    from django.conf import settings
    from django.core.wsgi import get_wsgi_application
    from waitress.server import create_server

    local = ("127.0.0.1", "localhost", "::1")
    if args.host not in local and "WEEKE_ALLOWED_HOSTS" not in os.environ:
        settings.ALLOWED_HOSTS.append(args.host)
    # Static files (the form's JS/CSS and the vendored NiiVue bundle) are served by WhiteNoise
    # inside the Django middleware (settings.py): a single-site app needs no separate web
    # server, and static responses carry the same security headers as pages.
    server = create_server(get_wsgi_application(), host=args.host, port=args.port,
                           threads=args.threads, ident="weeke",
                           **waitress_proxy_options(args.trusted_proxy))
    port = server.effective_port
    host = f"[{args.host}]" if ":" in args.host else args.host
    behind = f", public URL {settings.WEEKE_PUBLIC_URL}" if settings.WEEKE_PUBLIC_URL else ""
    print(f"weeke reading app: http://{host}:{port}/  (data: {settings.WEEKE_DATA_DIR}{behind}; "
          "Ctrl-C to stop)", flush=True)
    if (settings.WEEKE_PUBLIC_URL or "").startswith("https:") and not args.trusted_proxy:
        print("note: --public-url https without --trusted-proxy: requests count as plain HTTP "
              "here (no HSTS from the app) and every client has the proxy's address (one "
              "shared login throttle); give the proxy's address", flush=True)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0
