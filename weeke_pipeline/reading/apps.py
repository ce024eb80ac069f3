"""Django app configuration: audit hooks for logins are connected when the app is ready."""

from django.apps import AppConfig


class ReadingConfig(AppConfig):
    name = "weeke_pipeline.reading"
    label = "reading"
    verbose_name = "Weeke blinded reading"

    def ready(self) -> None:
        from weeke_pipeline.reading import signals  # noqa: F401  (connects the receivers)
