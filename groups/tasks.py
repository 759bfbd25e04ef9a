"""Background tasks (Django's task framework API): thin wrappers taking ids."""

from __future__ import annotations

from functools import partial

from django_tasks import task

from groups import services
from loyalty.db import in_retried_transaction


@task()
def recompute_group_task(group_id: int, version: int) -> None:
    # Run again if PostgreSQL aborts it to break a deadlock with a concurrent member write.
    in_retried_transaction(partial(services.recompute_group, group_id=group_id, version=version))


@task()
def refresh_relative_date_groups_task(club_id: int) -> None:
    services.refresh_relative_date_groups(club_id=club_id)
