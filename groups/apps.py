"""App config for members groups; wires the receivers of member and club signals."""

from django.apps import AppConfig


class GroupsConfig(AppConfig):
    name = "groups"
    verbose_name = "Members groups"

    def ready(self) -> None:
        from groups import receivers  # noqa: F401  (connects the receivers)
