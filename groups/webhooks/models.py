"""Webhook endpoints a club registers, and the deliveries of membership events to them.

Their app label is ``groups``: the tables (``groups_webhookendpoint``,
``groups_webhookdelivery``), their migrations, permissions and admin URLs stay those of the
groups app, which made them, while the code lives in this package of its own.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from groups.models import EventKind, new_webhook_secret
from loyalty.db_decoding import JSONField
from loyalty.models import Club, ClubScopedModel


class WebhookEndpoint(ClubScopedModel):
    """Where a club's membership events are posted: a URL, a signing secret and a filter."""

    url = models.URLField(max_length=2000, verbose_name="URL")
    description = models.CharField(max_length=200, blank=True)
    # The receiver verifies each body's HMAC-SHA256 signature under this secret.
    secret = models.CharField(max_length=100, default=new_webhook_secret)
    # Group ids as a list, empty for every group: no join table, so the row stays in its shard.
    group_ids = JSONField(default=list, blank=True)
    on_join = models.BooleanField(default=True, verbose_name="joins")
    on_leave = models.BooleanField(default=True, verbose_name="leaves")
    active = models.BooleanField(default=True)

    class Meta:
        app_label = "groups"
        ordering = ["id"]
        verbose_name = "webhook endpoint"
        indexes = [models.Index(fields=["club", "active"], name="webhook_club_active_idx")]

    def __str__(self) -> str:
        return self.description or self.url

    def listens_to(self, group_id: int, kind: str) -> bool:
        wanted = self.on_join if kind == EventKind.JOINED else self.on_leave
        return wanted and (not self.group_ids or group_id in self.group_ids)


class DeliveryStatus(models.TextChoices):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class WebhookDelivery(models.Model):
    """Up to a batch of committed events for one endpoint, and how sending them went."""

    club = models.ForeignKey(Club, on_delete=models.CASCADE, db_index=False)
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries", db_index=False
    )
    # The ids of the MembershipEvent rows sent; the body is built from them at each attempt.
    event_ids = JSONField(default=list)
    events_count = models.PositiveIntegerField(default=0)
    status = models.CharField(
        max_length=9, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    # Failed attempts are retried with back-off until then; resending moves it on.
    retry_until = models.DateTimeField()
    # A worker holds a delivery while it sends it, so two workers never send it at once.
    locked_until = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.TextField(blank=True)
    error = models.TextField(blank=True)

    class Meta:
        app_label = "groups"
        ordering = ["-id"]
        verbose_name = "webhook delivery"
        verbose_name_plural = "webhook deliveries"
        indexes = [
            models.Index(fields=["club", "endpoint", "status"], name="delivery_club_endpoint_idx"),
            # The sweep for due retries looks across clubs, and only at pending deliveries.
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(status="pending"),
                name="delivery_due_idx",
            ),
            # Finished deliveries are pruned by age, across clubs too.
            models.Index(
                fields=["created_at"],
                condition=~models.Q(status="pending"),
                name="delivery_finished_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"delivery {self.pk} to {self.endpoint_id}"
