"""Background tasks of members (Django's task framework API): thin wrappers taking ids."""

from __future__ import annotations

from django_tasks import task

from members import import_services


@task()
def run_import_task(import_pk: int) -> None:
    import_services.run_import(import_pk=import_pk)
