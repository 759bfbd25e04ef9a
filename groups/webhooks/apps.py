"""App config of webhooks; wires their receiver of the ledger's signal."""

from importlib import import_module

from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "groups.webhooks"
    label = "webhooks"
    verbose_name = "Webhooks"

    def ready(self) -> None:
        # Importing the module connects its receivers.
        import_module("groups.webhooks.receivers")
