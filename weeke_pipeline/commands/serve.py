"""``weeke serve``: run the reading web application under waitress (production WSGI server)."""

from __future__ import annotations

import argparse
import os

from weeke_pipeline.commands._reading import add_db_arguments, setup

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
    parser.add_argument("--trusted-proxy", default=os.environ.get("WEEKE_TRUSTED_PROXY"),
                        metavar="ADDR",
                        help="address of the reverse proxy (e.g. 127.0.0.1) whose "
                        "X-Forwarded-For/-Proto/-Host/-Port headers give the real client "
                        "address and scheme; those headers from anyone else are dropped; "
                        "default $WEEKE_TRUSTED_PROXY, else none")
    add_db_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from weeke_pipeline.cli import UsageError
    from weeke_pipeline.reading.deployment import PROXY_HEADERS, public_url_settings

    if args.public_url:
        try:
            public_url_settings(args.public_url)  # a clear error before anything starts
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
        os.environ["WEEKE_PUBLIC_URL"] = args.public_url  # read by the settings (as wsgi.py does)
    setup(args)
    from django.conf import settings
    from django.core.wsgi import get_wsgi_application
    from waitress.server import create_server

    local = ("127.0.0.1", "localhost", "::1")
    if args.host not in local and "WEEKE_ALLOWED_HOSTS" not in os.environ:
        settings.ALLOWED_HOSTS.append(args.host)
    settings.WEEKE_TRUSTED_PROXY = args.trusted_proxy or None
    proxy = ({"trusted_proxy": args.trusted_proxy, "trusted_proxy_count": 1,
              "trusted_proxy_headers": set(PROXY_HEADERS)} if args.trusted_proxy else {})
    # Static files (the form's JS/CSS and the vendored NiiVue bundle) are served by WhiteNoise
    # inside the Django middleware (settings.py): a single-site app needs no separate web
    # server, and static responses carry the same security headers as pages.
    server = create_server(get_wsgi_application(), host=args.host, port=args.port,
                           threads=args.threads, ident="weeke",
                           clear_untrusted_proxy_headers=True, **proxy)
    port = server.effective_port
    host = f"[{args.host}]" if ":" in args.host else args.host
    behind = f", public URL {settings.WEEKE_PUBLIC_URL}" if settings.WEEKE_PUBLIC_URL else ""
    print(f"weeke reading app: http://{host}:{port}/  (data: {settings.WEEKE_DATA_DIR}{behind}; "
          "Ctrl-C to stop)", flush=True)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0
