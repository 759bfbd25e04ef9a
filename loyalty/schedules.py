"""Periodic jobs of the service's plumbing: old task results and expired admin sessions."""

from __future__ import annotations

from datetime import timedelta
from importlib import import_module

from django.conf import settings
from django.utils import timezone
from django_tasks import DEFAULT_TASK_BACKEND_ALIAS, task_backends
from django_tasks_db.backend import DatabaseBackend
from django_tasks_db.models import DBTaskResult

from loyalty.scheduler import periodic


@periodic(
    "prune-task-results",
    every=timedelta(days=1),
    offset=timedelta(hours=2, minutes=45),
    by_hand="python manage.py prune_db_task_results --queue-name '*' --min-age-days 14",
)
def prune_task_results() -> str:
    """Delete the results of background tasks that finished (or failed) more than
    TASK_RESULTS_RETENTION_DAYS ago (the database task backend keeps one row per task run)."""
    backend = task_backends[DEFAULT_TASK_BACKEND_ALIAS]
    if not isinstance(backend, DatabaseBackend):
        return "nothing to prune: the task backend keeps no results in the database"
    days = settings.TASK_RESULTS_RETENTION_DAYS
    if days == 0:
        return "kept: TASK_RESULTS_RETENTION_DAYS is 0 (forever)"
    old = DBTaskResult.objects.finished().filter(
        backend_name=backend.alias, finished_at__lte=timezone.now() - timedelta(days=days)
    )
    deleted, _ = old.delete()
    return f"deleted {deleted:,} task results finished over {days} days ago"


@periodic(
    "clear-sessions",
    every=timedelta(days=1),
    offset=timedelta(hours=3, minutes=15),
    by_hand="python manage.py clearsessions",
)
def clear_expired_sessions() -> str:
    """Delete the admin's expired sessions (Django's clearsessions)."""
    import_module(settings.SESSION_ENGINE).SessionStore.clear_expired()
    return "expired sessions cleared"
