"""Background tasks (Django's task framework API): thin wrappers taking ids."""

from __future__ import annotations

from django_tasks import task

from groups import services


@task()
def recompute_group_task(group_id: int, version: int) -> None:
    services.recompute_group(group_id=group_id, version=version)


@task()
def refresh_relative_date_groups_task() -> None:
    services.refresh_relative_date_groups()
