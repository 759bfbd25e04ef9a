"""Background tasks of webhooks (Django's task framework API): thin wrappers taking ids."""

from __future__ import annotations

from django_tasks import task

from groups.webhooks import sending


@task()
def send_webhook_delivery_task(delivery_id: int) -> None:
    sending.send_delivery(delivery_id=delivery_id)
