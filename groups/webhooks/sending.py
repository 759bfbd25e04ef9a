"""Webhooks: committed joins and leaves posted to the endpoints a club registers.

Deliveries follow ``groups.signals.memberships_changed``: they are made in the transaction
that records the events, so a delivery exists exactly when its events were committed: a
rolled-back change leaves neither. Each delivery carries at most ``BATCH_EVENTS`` events
and is sent by a task once the transaction commits. A failed attempt is tried again with
exponential back-off until the delivery's ``retry_until`` (24 hours by default), then the
delivery is marked failed. Workers claim a delivery with a lease before sending it, so no
two send it at once; the scheduler (and the ``send_webhooks`` command) sends whatever is
due, for backends that cannot defer a task and as a safety net.
"""

from __future__ import annotations

import http.client
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from groups.models import EventKind, MembershipEvent
from groups.webhooks import outbound
from groups.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from loyalty.background import enqueue_after_commit
from loyalty.db import InArray

logger = logging.getLogger(__name__)

# Most events one delivery carries, so that a bulk change arrives in few requests.
BATCH_EVENTS = 1000
FIRST_RETRY = timedelta(seconds=30)
LONGEST_WAIT = timedelta(hours=1)
ID_HEADER = "X-Webhook-Id"
TIMESTAMP_HEADER = "X-Webhook-Timestamp"
SIGNATURE_HEADER = "X-Webhook-Signature"


def listening_endpoints(club_id: int, kind: str, group_ids: Iterable[int]) -> list[WebhookEndpoint]:
    """The club's active endpoints that want events of this kind from any of these groups.

    Asked before events are recorded, so that a change nobody listens to costs one query.
    """
    wanted = Q(on_join=True) if kind == EventKind.JOINED else Q(on_leave=True)
    endpoints = WebhookEndpoint.objects.filter(wanted, club_id=club_id, active=True)
    return [e for e in endpoints if any(e.listens_to(g, kind) for g in group_ids)]


def deliveries_for(
    club_id: int, kind: str, group_ids: Iterable[int]
) -> Callable[[Sequence[tuple[int, int]]], None] | None:
    """What a change of these groups' members needs: a function making the deliveries of
    its events for the endpoints listening to it, or None when none listens."""
    endpoints = listening_endpoints(club_id, kind, group_ids)
    return partial(queue_deliveries, club_id, kind, endpoints) if endpoints else None


def queue_deliveries(
    club_id: int,
    kind: str,
    endpoints: Sequence[WebhookEndpoint],
    events: Sequence[tuple[int, int]],
) -> None:
    """Create the deliveries of just-recorded events ``(event id, group id)``.

    Called inside the transaction that recorded them; the sending tasks are enqueued only
    when it commits.
    """
    now = timezone.now()
    retry_until = now + timedelta(hours=settings.WEBHOOKS_RETRY_HOURS)
    deliveries = []
    for endpoint in endpoints:
        event_ids = sorted(pk for pk, group_id in events if endpoint.listens_to(group_id, kind))
        for start in range(0, len(event_ids), BATCH_EVENTS):
            batch = event_ids[start : start + BATCH_EVENTS]
            deliveries.append(
                WebhookDelivery(
                    club_id=club_id,
                    endpoint=endpoint,
                    event_ids=batch,
                    events_count=len(batch),
                    created_at=now,
                    next_attempt_at=now,
                    retry_until=retry_until,
                )
            )
    if not deliveries:
        return
    created = WebhookDelivery.objects.bulk_create(deliveries)
    _enqueue_after_commit([delivery.pk for delivery in created])


def _enqueue_after_commit(delivery_ids: list[int]) -> None:
    enqueue_after_commit(
        f"{len(delivery_ids)} webhook deliveries",
        partial(_enqueue, delivery_ids),
        swept_by="send-webhooks",
    )


def _enqueue(delivery_ids: Iterable[int], run_after: datetime | None = None) -> None:
    # Imported here: the tasks module imports this one.
    from groups.webhooks.tasks import send_webhook_delivery_task

    task = send_webhook_delivery_task
    if run_after is not None:
        if not task.get_backend().supports_defer:
            # Left for the `send_webhooks` command, which sends what is due.
            return
        task = task.using(run_after=run_after)
    for delivery_id in delivery_ids:
        task.enqueue(delivery_id=delivery_id)


def body_of(delivery: WebhookDelivery) -> tuple[bytes, int]:
    """The JSON body (the delivery's id and club, its events oldest first) and its events."""
    # By primary key alone, the club checked on the rows: with the club in the WHERE, stale
    # statistics have made PostgreSQL AND in the whole club's index (58 ms, not 1 ms).
    events = (
        MembershipEvent.objects.filter(InArray(F("id"), delivery.event_ids))
        .order_by("id")
        .values_list("club_id", "id", "kind", "group_id", "member_id", "source", "created_at")
    )
    found = [
        {
            "id": pk,
            "kind": kind,
            "group_id": group_id,
            "member_id": member_id,
            "source": source,
            "occurred_at": created_at.isoformat().replace("+00:00", "Z"),
        }
        for club_id, pk, kind, group_id, member_id, source, created_at in events
        if club_id == delivery.club_id
    ]
    payload = {"delivery_id": delivery.pk, "club": delivery.club.slug, "events": found}
    return json.dumps(payload, separators=(",", ":")).encode(), len(found)


def retry_delay(attempts: int) -> timedelta:
    """How long to wait after the ``attempts``-th failed attempt: 30 s, doubling to 1 hour."""
    delay: timedelta = FIRST_RETRY * 2 ** min(attempts - 1, 16)
    return min(delay, LONGEST_WAIT)


def _claim(delivery_id: int, now: datetime) -> datetime | None:
    """Take the delivery for one attempt, if it is pending, due and nobody holds it.

    Return the lease's end, which is also the claim's token: only the holder of that lease
    records the attempt's outcome, so a worker that overran its lease cannot overwrite what
    the next one did.
    """
    lease = now + timedelta(seconds=settings.WEBHOOKS_TIMEOUT_SECONDS * 6 + 60)
    # A task may start a moment before the time it was deferred to.
    due = now + timedelta(seconds=5)
    claimed = WebhookDelivery.objects.filter(
        Q(locked_until__isnull=True) | Q(locked_until__lt=now),
        pk=delivery_id,
        status=DeliveryStatus.PENDING,
        next_attempt_at__lte=due,
    ).update(locked_until=lease, attempts=F("attempts") + 1, last_attempt_at=now)
    return lease if claimed else None


def _storable(text: str) -> str:
    # PostgreSQL text cannot hold NUL, which a receiver's answer may contain.
    return text.replace("\x00", "\ufffd")


def send_delivery(*, delivery_id: int) -> datetime | None:
    """Make one attempt at a due delivery; return when it is tried again, if it is.

    The retry is enqueued as a deferred task where the backend can defer one.
    """
    now = timezone.now()
    lease = _claim(delivery_id, now)
    if lease is None:
        return None
    delivery = WebhookDelivery.objects.select_related("endpoint", "club").get(pk=delivery_id)
    answer, error, final = _attempt(delivery)
    retry_at = _finish(delivery, lease, answer, _storable(error), final)
    if retry_at is not None:
        _enqueue([delivery_id], run_after=retry_at)
    return retry_at


def _attempt(delivery: WebhookDelivery) -> tuple[outbound.Answer | None, str, bool]:
    """Post the delivery once: the answer, or the error and whether retrying is pointless."""
    endpoint = delivery.endpoint
    if not endpoint.active:
        # Kept and retried: the endpoint may be switched on again within the window.
        return None, "The endpoint is disabled.", False
    body, found = body_of(delivery)
    if found < delivery.events_count:
        missing = delivery.events_count - found
        return None, f"{missing} of its events no longer exist (pruned).", True
    timestamp = int(time.time())
    headers = {
        ID_HEADER: str(delivery.pk),
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: outbound.sign(endpoint.secret, timestamp, body),
    }
    try:
        return (
            outbound.post_json(endpoint.url, body, headers, settings.WEBHOOKS_TIMEOUT_SECONDS),
            "",
            False,
        )
    except outbound.RefusedAddress as refusal:
        return None, f"Refused: {refusal}", True
    except (OSError, http.client.HTTPException) as failure:
        return None, f"{type(failure).__name__}: {failure}", False
    except Exception as failure:
        # Whatever else goes wrong is recorded and retried, never left holding the lease.
        logger.exception("Webhook delivery %s failed unexpectedly", delivery.pk)
        return None, f"{type(failure).__name__}: {failure}", False


def _finish(
    delivery: WebhookDelivery,
    lease: datetime,
    answer: outbound.Answer | None,
    error: str,
    final: bool,
) -> datetime | None:
    now = timezone.now()
    fields: dict[str, object] = {
        "locked_until": None,
        "response_status": answer.status if answer else None,
        "response_body": _storable(answer.body) if answer else "",
        "error": error,
    }
    retry_at = None
    if answer is not None and 200 <= answer.status < 300:
        fields.update(status=DeliveryStatus.DELIVERED, delivered_at=now)
    else:
        if answer is not None:
            fields["error"] = f"The endpoint answered {answer.status}."
        retry_at = now + retry_delay(delivery.attempts)
        if final or retry_at > delivery.retry_until:
            fields["status"] = DeliveryStatus.FAILED
            retry_at = None
        else:
            fields["next_attempt_at"] = retry_at
    held = WebhookDelivery.objects.filter(
        pk=delivery.pk, status=DeliveryStatus.PENDING, locked_until=lease
    ).update(**fields)
    return retry_at if held else None


def due_delivery_ids(limit: int | None = None) -> list[int]:
    """Pending deliveries whose next attempt is due and that no worker holds, oldest first."""
    now = timezone.now()
    due = (
        WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
        .filter(Q(locked_until__isnull=True) | Q(locked_until__lt=now))
        .order_by("next_attempt_at", "pk")
        .values_list("pk", flat=True)
    )
    return list(due[:limit] if limit else due)


def send_due_deliveries(limit: int | None = None) -> Counter[str]:
    """Make one attempt at every delivery that is due; return how many ended in each status."""
    ids = due_delivery_ids(limit)
    for delivery_id in ids:
        send_delivery(delivery_id=delivery_id)
    return Counter(WebhookDelivery.objects.filter(pk__in=ids).values_list("status", flat=True))


def outcome_line(outcome: Counter[str]) -> str:
    """``send_due_deliveries``'s outcome for people."""
    return (
        f"{outcome.total()} due: {outcome[DeliveryStatus.DELIVERED]} delivered, "
        f"{outcome[DeliveryStatus.PENDING]} to retry, {outcome[DeliveryStatus.FAILED]} failed."
    )


def resend_deliveries(deliveries: QuerySet[WebhookDelivery]) -> list[int]:
    """Send delivered or failed deliveries again, with a fresh retry window; return their ids."""
    now = timezone.now()
    ids = list(deliveries.exclude(status=DeliveryStatus.PENDING).values_list("pk", flat=True))
    WebhookDelivery.objects.filter(pk__in=ids).update(
        status=DeliveryStatus.PENDING,
        next_attempt_at=now,
        retry_until=now + timedelta(hours=settings.WEBHOOKS_RETRY_HOURS),
        locked_until=None,
        delivered_at=None,
        # The back-off starts again at 30 s.
        attempts=0,
    )
    _enqueue_after_commit(ids)
    return ids


def prune_deliveries(*, before: datetime) -> int:
    """Delete the delivered and failed deliveries made before ``before``; return how many."""
    finished = WebhookDelivery.objects.filter(created_at__lt=before).exclude(
        status=DeliveryStatus.PENDING
    )
    return finished.delete()[0]


def prune_old_deliveries() -> int:
    """Prune the finished deliveries older than WEBHOOKS_DELIVERIES_RETENTION_DAYS (none when
    it is 0); return how many."""
    days = settings.WEBHOOKS_DELIVERIES_RETENTION_DAYS
    if days <= 0:
        return 0
    return prune_deliveries(before=timezone.now() - timedelta(days=days))
