"""The admin walked the way staff work in it, in a real browser (Chromium)."""

from __future__ import annotations

import json
from collections.abc import Callable

from playwright.sync_api import Page, expect

from groups.models import ALL_MEMBERS_KEY, MembersGroup
from loyalty.models import Club
from members.models import Member
from tests.helpers import assert_consistent

Step = Callable[[str], None]


def result_row(page: Page, label: str) -> str:
    return page.locator(f"#result tr:has(th:text-is('{label}')) td").inner_text()


def edit_as_json(page: Page, conditions: str) -> None:
    """Type conditions into the rule builder's JSON view."""
    switch = page.locator(".rule-builder .rb-switch")
    if switch.inner_text() == "Edit as JSON":
        switch.click()
    page.fill("#id_audience_conditions", conditions)


def add_group(page: Page, name: str, conditions: str = "") -> MembersGroup:
    page.goto("/admin/groups/membersgroup/add/")
    page.select_option("#id_club", label="Red Club")
    page.fill("#id_name", name)
    if conditions:
        edit_as_json(page, conditions)
    page.click("input[name=_save]")
    expect(page.locator(".messagelist .success")).to_be_visible()
    return MembersGroup.objects.get(name=name)


def members_page(page: Page, group: MembersGroup) -> None:
    page.goto(f"/admin/groups/membersgroup/{group.pk}/members/")


def apply(page: Page, action: str, identifiers: list[str]) -> None:
    page.check(f"input[name=action][value={action}]")
    page.select_option("#id_identifier_type", "email")
    page.fill("#id_identifiers", "\n".join(identifiers))
    page.click("#bulk-members-form input[type=submit]")


def test_staff_paste_500_identifiers_into_a_manual_group_then_remove_some(
    page: Page, staff: str, log_in: Step, shot: Step
) -> None:
    log_in(staff)
    group = add_group(page, "Newsletter readers")
    members_page(page, group)
    known = [f"member{n}@red.example" for n in range(1, 451)]
    unknown = [f"nobody{n}@red.example" for n in range(40)]
    malformed = [f"not an email {n}" for n in range(10)]
    apply(page, "add", known + unknown + malformed)

    expect(page.locator("#result")).to_be_visible()
    assert result_row(page, "Added") == "450"
    assert result_row(page, "Not found") == "40"
    assert result_row(page, "Invalid") == "10"
    expect(page.locator("#members-count")).to_have_text("450")
    assert page.locator("#not-found").input_value().split() == unknown
    shot("manual-group-paste-report")

    apply(page, "remove", known[:50])
    assert result_row(page, "Removed") == "50"
    expect(page.locator("#members-count")).to_have_text("400")
    history = page.locator("#history tbody tr")
    expect(history.first).to_contain_text("Left")
    expect(history.first).to_contain_text("carol")
    shot("manual-group-history")

    group.refresh_from_db()
    assert group.members_count == 400
    assert_consistent(group)


def test_staff_upload_a_csv_of_identifiers_to_a_manual_group(
    page: Page, staff: str, log_in: Step, shot: Step
) -> None:
    log_in(staff)
    group = add_group(page, "Fair visitors")
    members_page(page, group)
    body = "email\n" + "".join(f"member{n}@red.example\n" for n in range(100, 120))
    page.set_input_files(
        "#id_csv_file",
        files=[{"name": "visitors.csv", "mimeType": "text/csv", "buffer": body.encode()}],
    )
    page.click("#bulk-members-form input[type=submit]")

    assert result_row(page, "Added") == "20"
    expect(page.locator("#members-count")).to_have_text("20")
    shot("manual-group-csv-upload")
    assert set(group.memberships.values_list("member__email", flat=True)) == {
        f"member{n}@red.example" for n in range(100, 120)
    }


def test_staff_build_an_automatic_group_previewing_its_rule(
    page: Page, staff: str, log_in: Step, shot: Step, red: Club
) -> None:
    olas = Member.objects.filter(club=red, properties__first_name="Ola").count()
    log_in(staff)
    page.goto("/admin/groups/membersgroup/add/")
    page.select_option("#id_club", label="Red Club")
    page.fill("#id_name", "Olas")
    bad = [{"condition_group": "member_properties", "type": "string", "field": "first_name"}]
    edit_as_json(page, json.dumps(bad))
    preview = page.locator("#rule-preview")
    expect(preview).to_contain_text("operator")
    page.click("input[name=_save]")
    expect(page.locator(".errornote")).to_be_visible()
    assert "operator" in page.locator(".field-audience_conditions .errorlist").inner_text()
    shot("automatic-group-bad-condition")

    rule = [
        {
            "condition_group": "member_properties",
            "type": "string",
            "field": "first_name",
            "operator": "eq",
            "value": "Ola",
        }
    ]
    edit_as_json(page, json.dumps(rule))
    expect(preview).to_contain_text(f"{olas} members match")
    shot("automatic-group-preview")
    page.click("input[name=_save]")
    expect(page.locator(".messagelist .success")).to_be_visible()

    group = MembersGroup.objects.get(name="Olas")
    assert group.automatic
    assert group.members_count == olas
    members_page(page, group)
    expect(page.locator("#members-count")).to_have_text(str(olas))
    expect(page.locator("#bulk-members-form")).to_have_count(0)
    shot("automatic-group-members")

    page.goto(f"/admin/groups/membersgroup/{group.pk}/change/")
    wider = [{**rule[0], "operator": "in", "value": ["Ola", "Kari"]}]
    edit_as_json(page, json.dumps(wider))
    expect(preview).to_contain_text(f"600 members match ({600 - olas} would join, 0 would leave)")
    page.click("input[name=_save]")
    expect(page.locator(".messagelist .success")).to_be_visible()
    members_page(page, group)
    expect(page.locator("#members-count")).to_have_text("600")
    group.refresh_from_db()
    assert group.members_count == 600
    assert_consistent(group)

    page.goto(f"/admin/groups/membersgroup/{group.pk}/change/")
    expect(page.locator("body")).to_contain_text("first name is one of 'Ola', 'Kari'")
    page.get_by_role("button", name="Count the members").click()
    expect(preview).to_contain_text("600 members match (0 would join, 0 would leave)")
    expect(page.locator("svg")).not_to_have_count(0)
    # The sticky side bar follows the scroll the click made; the whole page is shot from the top.
    page.evaluate("window.scrollTo(0, 0)")
    shot("automatic-group-story")


def test_nobody_can_edit_or_delete_the_all_members_group(
    page: Page, superuser: str, log_in: Step, shot: Step, red: Club
) -> None:
    system = MembersGroup.objects.get(club=red, system_key=ALL_MEMBERS_KEY)
    log_in(superuser)
    page.goto(f"/admin/groups/membersgroup/{system.pk}/change/")
    expect(page.locator("input[name=_save]")).to_have_count(0)
    expect(page.locator("input[name=_continue]")).to_have_count(0)
    expect(page.locator("a.deletelink")).to_have_count(0)
    expect(page.locator("#id_name")).to_have_count(0)
    shot("system-group-read-only")

    members_page(page, system)
    expect(page.locator("#bulk-members-form")).to_have_count(0)

    response = page.goto(f"/admin/groups/membersgroup/{system.pk}/delete/")
    assert response is not None
    assert response.status == 403

    page.goto("/admin/groups/membersgroup/")
    expect(page.locator(f"input[name=_selected_action][value='{system.pk}']")).to_have_count(0)
    expect(page.locator("#result_list")).to_contain_text("All members")
    shot("system-group-not-selectable")

    system.refresh_from_db()
    assert system.members_count == 600


def test_club_staff_cannot_reach_another_clubs_group_by_url(
    page: Page, staff: str, log_in: Step, blue: Club
) -> None:
    hidden = MembersGroup.objects.get(club=blue, system_key=ALL_MEMBERS_KEY)
    log_in(staff)
    page.goto(f"/admin/groups/membersgroup/{hidden.pk}/change/")
    assert page.url.endswith("/admin/")
    expect(page.locator(".messagelist .warning")).to_contain_text("doesn\u2019t exist")
    response = page.goto(f"/admin/groups/membersgroup/{hidden.pk}/members/")
    assert response is not None
    assert response.status == 404
    expect(page.locator("body")).not_to_contain_text("Blue Club")
    page.goto("/admin/groups/membersgroup/")
    expect(page.locator("#result_list")).not_to_contain_text("Blue Club")
    expect(page.locator("#result_list")).to_contain_text("Red Club")
