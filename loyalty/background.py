"""Background work handed to the task queue once the transaction that asked for it commits."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial

from django.db import transaction

from loyalty import reporting

logger = logging.getLogger(__name__)


def enqueue_after_commit(what: str, enqueue: Callable[[], object], *, swept_by: str) -> None:
    """Call ``enqueue`` once the current transaction commits (at once outside one).

    The change has committed by then, so a queue that refuses the task (the RQ backend with
    its Redis down) must not fail the request that made it: the failure is logged as a
    warning and reported, and the work stays pending in the database, where the scheduler's
    ``swept_by`` job picks it up.
    """
    transaction.on_commit(partial(_enqueue, what, enqueue, swept_by))


def _enqueue(what: str, enqueue: Callable[[], object], swept_by: str) -> None:
    try:
        enqueue()
    except Exception as exc:
        logger.warning(
            "Could not enqueue %s (%s: %s); the scheduler's %s job will pick it up",
            what,
            type(exc).__name__,
            exc,
            swept_by,
            exc_info=True,
        )
        reporting.report_exception(exc)
