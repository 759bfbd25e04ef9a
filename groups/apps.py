"""App config for members groups; wires the receivers of member and club signals."""

from importlib import import_module

from django.apps import AppConfig


class GroupsConfig(AppConfig):
    name = "groups"
    verbose_name = "Members groups"

    def ready(self) -> None:
        # Importing the module connects its receivers.
        import_module("groups.receivers")
