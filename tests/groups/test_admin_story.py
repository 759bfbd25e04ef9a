"""A group's page tells its story: kind, rule in words, links, latest events, size chart."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from groups import services
from groups.models import MembersGroup, MembershipEvent, Source
from groups.selectors import group_size_history
from loyalty.models import Club
from tests.factories import GroupFactory, MemberFactory
from tests.helpers import cond, in_groups

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(staff_client_with: Callable[..., Client]) -> Client:
    return staff_client_with(
        "groups.view_membersgroup", "groups.change_membersgroup", "members.view_member"
    )


def change_url(group: MembersGroup) -> str:
    return reverse("admin:groups_membersgroup_change", args=[group.pk])


def member_url(member_id: int) -> str:
    return reverse("admin:members_member_change", args=[member_id])


def field(page: str, name: str) -> str:
    """The text of a read-only field of the change form, tags stripped."""
    match = re.search(r'<div class="readonly">(.*?)</div>', page.split(f"field-{name}")[1], re.S)
    assert match is not None, name
    return re.sub(r"<[^>]+>", "", match.group(1)).strip()


def add(group: MembersGroup, *emails: str, actor: str = "user:ann") -> None:
    services.add_members(
        group=group,
        identifier_type="email",
        identifiers=list(emails),
        source=Source.ADMIN,
        actor=actor,
    )


def test_an_automatic_groups_page_says_its_kind_count_and_rule_in_words(
    staff_client: Client, club: Club
) -> None:
    red = GroupFactory(club=club, name="Red")
    MemberFactory(club=club, email="ola@example.com", properties={"first_name": "Ola"})
    add(red, "ola@example.com")
    group = services.create_group(
        club=club,
        name="Ola in Red",
        audience_conditions=[cond("string", "first_name", "match", "Ola"), in_groups(red.pk)],
    )

    page = staff_client.get(change_url(group)).content.decode()

    assert field(page, "kind").startswith("Automatic")
    assert field(page, "members_count") == "1"
    assert field(page, "rule_in_words") == (
        "first name contains &#x27;Ola&#x27; and member of group &#x27;Red&#x27;"
    )
    assert field(page, "recomputing_state").startswith("No")
    assert f'<a href="{change_url(red)}">Red</a> (manual, 1 members)' in page


def test_a_system_groups_page_is_read_only_and_tells_the_same_story(
    staff_client: Client, club: Club, all_members: MembersGroup
) -> None:
    member = MemberFactory(club=club)

    response = staff_client.get(change_url(all_members))
    page = response.content.decode()

    assert response.status_code == 200
    assert 'name="_save"' not in page
    assert field(page, "kind").startswith("System")
    assert field(page, "rule_in_words") == "every member of the club"
    assert f'<a href="{member_url(member.pk)}">{member.email}</a>' in page


def test_a_manual_groups_rule_says_members_are_chosen_by_hand_and_who_reads_it(
    staff_client: Client, club: Club
) -> None:
    red = GroupFactory(club=club, name="Red")
    reader = services.create_group(
        club=club, name="Reader", audience_conditions=[in_groups(red.pk)]
    )

    page = staff_client.get(change_url(red)).content.decode()

    assert field(page, "kind").startswith("Manual")
    assert field(page, "rule_in_words").startswith("None: members are added and removed by hand")
    assert field(page, "depends_on") == "-"
    assert f'<a href="{change_url(reader)}">Reader</a> (automatic, 0 members)' in page


def test_a_pending_recomputation_shows_on_the_page(staff_client: Client, club: Club) -> None:
    group = services.create_group(
        club=club, name="Gmail", audience_conditions=[cond("string", "email", "match", "@gmail.")]
    )
    MembersGroup.objects.filter(pk=group.pk).update(recomputing=True)

    page = staff_client.get(change_url(group)).content.decode()

    assert field(page, "recomputing_state").startswith("Yes: a background recomputation")


def test_the_latest_events_list_member_kind_source_actor_newest_first(
    staff_client: Client, club: Club
) -> None:
    group = GroupFactory(club=club, name="Red")
    ann = MemberFactory(club=club, email="ann@example.com")
    MemberFactory(club=club, email="bob@example.com")
    add(group, "ann@example.com", actor="user:carol")
    services.remove_members(
        group=group,
        identifier_type="email",
        identifiers=["ann@example.com"],
        source=Source.API,
        actor="token:crm",
    )
    add(group, "bob@example.com")
    bob_id = MembershipEvent.objects.filter(group_id=group.pk).first().member_id
    MemberFactory._meta.model.objects.filter(pk=bob_id).delete()

    page = staff_client.get(change_url(group)).content.decode()
    table = page.split('id="latest-events"')[1]
    rows = [re.sub(r"<[^>]+>", "|", row) for row in table.split("<tr>")[2:]]

    assert len(rows) == 3
    assert f"member {bob_id} (deleted)" in rows[0]
    assert "|Left|" in rows[1].replace("||", "|")
    assert "token:crm" in rows[1]
    assert "Api" in rows[1] or "API" in rows[1]
    assert "Joined" in rows[2]
    assert "user:carol" in rows[2]
    assert "Admin" in rows[2]
    assert f'<a href="{member_url(ann.pk)}">ann@example.com</a>' in table


def test_only_the_latest_twenty_events_are_on_the_page(staff_client: Client, club: Club) -> None:
    group = GroupFactory(club=club)
    members = MemberFactory.create_batch(25, club=club)
    add(group, *[member.email for member in members])

    table = staff_client.get(change_url(group)).content.decode().split('id="latest-events"')[1]

    assert table.count("<tr>") == 21


def test_the_size_history_replays_the_events_of_each_day(club: Club) -> None:
    group = GroupFactory(club=club)
    members = MemberFactory.create_batch(4, club=club)
    add(group, *[member.email for member in members[:3]])
    now = timezone.now()
    # Two joined 10 days ago, one 3 days ago; then one left and one joined today.
    events = list(MembershipEvent.objects.filter(group_id=group.pk).order_by("id"))
    MembershipEvent.objects.filter(pk__in=[e.pk for e in events[:2]]).update(
        created_at=now - timedelta(days=10)
    )
    MembershipEvent.objects.filter(pk=events[2].pk).update(created_at=now - timedelta(days=3))
    services.remove_members(
        group=group, identifier_type="id", identifiers=[members[0].pk], source=Source.API, actor=""
    )
    add(group, members[3].email)
    group.refresh_from_db()

    history = group_size_history(group, days=12)

    sizes = [size for _day, size in history]
    assert len(history) == 12
    assert history[-1][0] == timezone.localdate(now, timezone=UTC)
    assert sizes == [0, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3]
    assert group.members_count == 3


def test_the_size_before_the_window_is_the_count_less_the_net_joins_since(club: Club) -> None:
    group = GroupFactory(club=club)
    members = MemberFactory.create_batch(3, club=club)
    add(group, *[member.email for member in members])
    MembershipEvent.objects.filter(group_id=group.pk).update(
        created_at=timezone.now() - timedelta(days=200)
    )
    group.refresh_from_db()

    assert [size for _day, size in group_size_history(group, days=90)] == [3] * 90


def test_the_page_draws_the_size_chart_as_inline_svg_with_labelled_axes(
    staff_client: Client, club: Club
) -> None:
    group = GroupFactory(club=club)
    members = MemberFactory.create_batch(1234, club=club)
    add(group, *[member.email for member in members])

    page = staff_client.get(change_url(group)).content.decode()
    chart = page.split('id="group-size"')[1].split("</svg>")[0]

    assert "Size over the last 90 days" in chart
    assert "<svg" in chart
    assert "<polyline" in chart
    assert "<polygon" in chart
    points = re.search(r'<polyline points="([^"]+)"', chart).group(1).split()
    assert len(points) == 90
    # Flat at zero until today, then at the top of the chart.
    assert points[0].endswith(",152.0")
    assert points[-1].endswith(",12.0")
    assert ">1,234</text>" in chart
    assert "<script" not in page.split('id="group-size"')[1].split("</div>")[0]


def queries_for(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


def test_the_group_list_runs_the_same_queries_for_one_group_or_many(
    staff_client: Client, club: Club, django_assert_max_num_queries: Callable[..., object]
) -> None:
    url = reverse("admin:groups_membersgroup_changelist")
    few = queries_for(staff_client, url)
    for index in range(30):
        GroupFactory(club=club, name=f"G{index}", type=f"T{index}")
    MemberFactory.create_batch(20, club=club)

    assert queries_for(staff_client, url) == few
    with django_assert_max_num_queries(12):
        staff_client.get(url)


def test_a_group_page_runs_the_same_queries_for_one_member_or_many(
    staff_client: Client, club: Club, django_assert_max_num_queries: Callable[..., object]
) -> None:
    red = GroupFactory(club=club, name="Red")
    group = services.create_group(club=club, name="Auto", audience_conditions=[in_groups(red.pk)])
    MemberFactory(club=club, email="one@example.com")
    add(red, "one@example.com")
    few = queries_for(staff_client, change_url(group))

    members = MemberFactory.create_batch(60, club=club)
    add(red, *[member.email for member in members])
    services.remove_members(
        group=red,
        identifier_type="id",
        identifiers=[member.pk for member in members[:30]],
        source=Source.ADMIN,
        actor="",
    )
    for index in range(5):
        services.create_group(club=club, name=f"U{index}", audience_conditions=[in_groups(red.pk)])

    assert queries_for(staff_client, change_url(group)) == few
    with django_assert_max_num_queries(24):
        staff_client.get(change_url(group))
