"""``weeke serve``: run the reading web application under waitress (production WSGI server)."""

from __future__ import annotations

import argparse

from weeke_pipeline.cli.commands._reading import add_db_arguments, setup

HELP = "serve the blinded reading web application (migrates the database first)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 = any)")
    parser.add_argument("--threads", type=int, default=8, help="worker threads (default 8)")
    add_db_arguments(parser)


def run(args: argparse.Namespace) -> int:
    import os

    setup(args)
    from django.conf import settings
    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from django.core.wsgi import get_wsgi_application
    from waitress.server import create_server

    local = ("127.0.0.1", "localhost", "::1")
    if args.host not in local and "WEEKE_ALLOWED_HOSTS" not in os.environ:
        settings.ALLOWED_HOSTS.append(args.host)
    # Static files (the form's JS/CSS and the vendored NiiVue bundle) are served by the same
    # process: a single-site app needs no separate web server.
    app = StaticFilesHandler(get_wsgi_application())
    server = create_server(app, host=args.host, port=args.port, threads=args.threads,
                           ident="weeke")
    port = server.effective_port
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"weeke reading app: http://{host}:{port}/  (data: {settings.WEEKE_DATA_DIR}; "
          "Ctrl-C to stop)", flush=True)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0
