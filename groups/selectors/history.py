"""A group's history: its size day by day, its joins and leaves per interval, its events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.db.models import Count, Q
from django.db.models.functions import TruncDate, TruncWeek
from django.utils import timezone

from groups.models import EventKind, MembersGroup, MembershipEvent
from members.models import Member


def group_size_history(group: MembersGroup, *, days: int = 90) -> list[tuple[date, int]]:
    """The group's size at the end of each of the last ``days`` days (the club's days)."""
    today = timezone.now().astimezone(ZoneInfo(group.club.timezone)).date()
    stats = group_stats(group, since=today - timedelta(days=days - 1), until=today, interval="day")
    return [(interval.start, interval.size_at_end) for interval in stats]


@dataclass(frozen=True)
class IntervalStats:
    start: date
    end: date  # the last day of the interval
    size_at_start: int
    joins: int
    leaves: int
    size_at_end: int


def group_stats(
    group: MembersGroup, *, since: date, until: date, interval: str
) -> list[IntervalStats]:
    """The group's size and its joins and leaves per day or per week (Monday to Sunday) of
    the club's calendar, from the interval holding ``since`` to the one holding ``until``.

    One aggregate query over the event index counts each interval's joins and leaves since
    the first interval began; the size then is the stored count less the net joins since,
    and each interval's end size is its start size plus its joins less its leaves.
    """
    zone = ZoneInfo(group.club.timezone)
    step = timedelta(days=7 if interval == "week" else 1)
    first = since - timedelta(days=since.weekday()) if interval == "week" else since
    truncate = TruncWeek if interval == "week" else TruncDate
    rows = (
        MembershipEvent.objects.filter(
            club_id=group.club_id,
            group_id=group.pk,
            created_at__gte=datetime.combine(first, time.min, tzinfo=zone),
        )
        .annotate(bucket=truncate("created_at", tzinfo=zone))
        .values("bucket")
        .annotate(
            joins=Count("id", filter=Q(kind=EventKind.JOINED)),
            leaves=Count("id", filter=Q(kind=EventKind.LEFT)),
        )
        .order_by()
        .values_list("bucket", "joins", "leaves")
    )
    counts = {
        (bucket.date() if isinstance(bucket, datetime) else bucket): (joins, leaves)
        for bucket, joins, leaves in rows
    }
    size = group.members_count - sum(joins - leaves for joins, leaves in counts.values())
    stats = []
    start = first
    while start <= until:
        joins, leaves = counts.get(start, (0, 0))
        stats.append(
            IntervalStats(
                start, start + step - timedelta(days=1), size, joins, leaves, size + joins - leaves
            )
        )
        size += joins - leaves
        start += step
    return stats


def history_page(
    group: MembersGroup, *, before: int | None, per_page: int
) -> tuple[list[MembershipEvent], int | None]:
    """The group's events newest first, older than event ``before``, and the next cursor.

    Follows the (club, group_id, created_at) index backwards with a LIMIT; no COUNT.
    """
    events = MembershipEvent.objects.filter(club_id=group.club_id, group_id=group.pk).order_by(
        "-created_at", "-id"
    )
    if before is not None:
        cursor = events.filter(pk=before).values_list("created_at", flat=True).first()
        if cursor is not None:
            events = events.filter(Q(created_at__lt=cursor) | Q(created_at=cursor, pk__lt=before))
    page = list(events[: per_page + 1])
    next_before = page[per_page - 1].pk if len(page) > per_page else None
    return page[:per_page], next_before


def latest_events(
    group: MembersGroup, *, limit: int
) -> list[tuple[MembershipEvent, Member | None]]:
    """The group's newest events, each with its member (None once the member is deleted).

    Two queries whatever the history's length: the newest rows on the event index
    ``(club, group_id, created_at)``, then their members by primary key.
    """
    events = list(
        MembershipEvent.objects.filter(club_id=group.club_id, group_id=group.pk).order_by(
            "-created_at", "-id"
        )[:limit]
    )
    members = Member.objects.filter(club_id=group.club_id).in_bulk(
        {event.member_id for event in events}
    )
    return [(event, members.get(event.member_id)) for event in events]
