"""WSGI entry point (``weeke serve`` runs it under waitress after :func:`setup`)."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "weeke_pipeline.reading.settings")

from django.core.wsgi import get_wsgi_application

application = get_wsgi_application()
