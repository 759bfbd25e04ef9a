"""The rule builder of the group and audience forms, walked in Chromium."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect

from audiences.models import Audience
from groups import services
from groups.models import MembersGroup
from loyalty.models import Club
from members.models import Member
from members.services import bulk_create_members
from tests.helpers import assert_consistent, cond

Step = Callable[[str], None]
Shot = Callable[..., None]
CITIES = ["Oslo", "Bergen", "Trondheim"]
SHOPPERS = range(1, 41)


def shopper(n: int) -> dict[str, Any]:
    return {
        "first_name": "Ola" if n % 2 else "Kari",
        "points": n * 5,
        "city": CITIES[n % 3],
    }


@pytest.fixture
def shoppers(red: Club) -> dict[int, int]:
    """40 more Red Club members with points and a city; every fourth gave the news consent.

    Maps each shopper's number to its member id.
    """
    members = [
        Member(
            email=f"shopper{n}@red.example",
            properties=shopper(n),
            consents={"news": {"status": True, "updated_at": "2024-01-01T00:00:00+00:00"}}
            if n % 4 == 0
            else {},
        )
        for n in SHOPPERS
    ]
    ids = bulk_create_members(club=red, members=members, source="system")
    return dict(zip(SHOPPERS, ids, strict=True))


def member_ids(group: MembersGroup) -> set[int]:
    return set(group.memberships.values_list("member_id", flat=True))


def row(page: Page, path: str) -> Locator:
    return page.locator(f".rb-row[data-path='{path}']")


def pick_field(page: Page, path: str, label: str) -> None:
    row(page, path).locator("select.rb-field").first.select_option(label=label)


def pick_operator(page: Page, path: str, label: str) -> None:
    row(page, path).locator("select.rb-operator").first.select_option(label=label)


def count(page: Page) -> Locator:
    return page.locator(".rule-builder .rb-count")


def new_group_form(page: Page, name: str) -> None:
    page.goto("/admin/groups/membersgroup/add/")
    page.select_option("#id_club", label="Red Club")
    page.fill("#id_name", name)


def save(page: Page) -> None:
    page.click("input[name=_save]")
    expect(page.locator(".messagelist .success")).to_be_visible()


def test_staff_build_a_nested_rule_from_nothing_and_save_it(
    page: Page, staff: str, log_in: Step, shot: Shot, shoppers: dict[int, int]
) -> None:
    log_in(staff)
    new_group_form(page, "Olas with points or in Bergen")
    expect(count(page)).to_contain_text("manual group")

    page.get_by_role("button", name="Add condition", exact=True).click()
    pick_field(page, "1", "first name")
    row(page, "1").get_by_label("Value of condition 1").fill("Ola")
    page.get_by_role("button", name="Add ANY group", exact=True).click()
    pick_field(page, "2.1", "points (number)")
    pick_operator(page, "2.1", "is greater than")
    row(page, "2.1").get_by_label("Value of condition 2.1").fill("50")
    page.get_by_role("button", name="Add condition to group 2", exact=True).click()
    pick_field(page, "2.2", "city (text)")
    pick_operator(page, "2.2", "is one of")
    row(page, "2.2").get_by_label("Value of condition 2.2, one per line").fill("Bergen\nTromsø")

    expected = {
        member
        for n, member in shoppers.items()
        if shopper(n)["first_name"] == "Ola"
        and (shopper(n)["points"] > 50 or shopper(n)["city"] == "Bergen")
    }
    expect(count(page)).to_contain_text(f"{len(expected)} members match")
    expect(page.locator(".rule-builder .rb-words-text")).to_have_text(
        "first name is 'Ola' and (points is greater than 50 or city is one of 'Bergen', 'Tromsø')"
    )
    builder = page.locator(".field-audience_conditions")
    shot("rule-builder-light", builder)
    page.emulate_media(color_scheme="dark")
    shot("rule-builder-dark", builder)
    page.emulate_media(color_scheme="light")
    save(page)

    group = MembersGroup.objects.get(name="Olas with points or in Bergen")
    rule = [
        cond("string", "first_name", "eq", "Ola"),
        {
            "operator": "or",
            "conditions": [
                cond("number", "points", "gt", 50),
                cond("string", "city", "in", ["Bergen", "Tromsø"]),
            ],
        },
    ]
    # The rule as an API client would send it: what the builder saved is the same JSON.
    assert group.audience.conditions == rule
    assert group.automatic
    assert member_ids(group) == expected
    assert_consistent(group)


def test_changing_one_value_shows_the_count_and_who_would_join_and_leave_before_saving(
    page: Page, staff: str, log_in: Step, red: Club
) -> None:
    olas = Member.objects.filter(club=red, properties__first_name="Ola").count()
    group = services.create_group(
        club=red, name="Olas", audience_conditions=[cond("string", "first_name", "eq", "Ola")]
    )
    log_in(staff)
    page.goto(f"/admin/groups/membersgroup/{group.pk}/change/")
    # Opening the page counts nothing; one click, or any edit, does.
    expect(page.locator(".rule-builder .rb-words-text")).to_have_text("first name is 'Ola'")
    page.get_by_role("button", name="Count the members").click()
    expect(count(page)).to_contain_text(f"{olas} members match (0 would join, 0 would leave)")

    row(page, "1").get_by_label("Value of condition 1").fill("Kari")

    karis = 600 - olas
    expect(count(page)).to_contain_text(
        f"{karis} members match ({karis} would join, {olas} would leave)"
    )
    expect(page.locator(".rule-builder .rb-words-text")).to_have_text("first name is 'Kari'")
    group.refresh_from_db()
    assert group.members_count == olas, "nothing is saved before the form is"
    assert group.audience.conditions == [cond("string", "first_name", "eq", "Ola")]


def test_a_group_condition_picks_the_group_by_name(
    page: Page, staff: str, log_in: Step, red: Club, shoppers: dict[int, int]
) -> None:
    newsletter = services.create_group(club=red, name="Newsletter")
    readers = [shoppers[n] for n in (1, 2, 3)]
    services.add_member_ids(group=newsletter, member_ids=readers, source="admin")
    log_in(staff)
    new_group_form(page, "Newsletter readers")

    page.get_by_role("button", name="Add condition", exact=True).click()
    pick_field(page, "1", "member of groups")
    expect(row(page, "1").locator("select.rb-operator")).to_have_value("any")
    row(page, "1").get_by_label("Group to add to condition 1").select_option(label="Newsletter")
    row(page, "1").get_by_role("button", name="Add the chosen group to condition 1").click()
    expect(row(page, "1").locator(".rb-chip span")).to_have_text(["Newsletter"])
    expect(count(page)).to_contain_text("3 members match")
    expect(page.locator(".rule-builder .rb-words-text")).to_have_text(
        "member of group 'Newsletter'"
    )
    save(page)

    group = MembersGroup.objects.get(name="Newsletter readers")
    assert group.audience.conditions == [cond("array", "members_group_ids", "any", [newsletter.pk])]
    assert member_ids(group) == set(readers)

    # Its own page offers neither itself nor a group that reads it (a cycle).
    services.create_group(
        club=red, name="Readers of readers", audience_conditions=[in_group(group.pk)]
    )
    page.goto(f"/admin/groups/membersgroup/{group.pk}/change/")
    picker = row(page, "1").get_by_label("Group to add to condition 1")
    expect(picker.locator("option")).not_to_have_count(1)
    offered = picker.locator("option").all_inner_texts()
    assert "All members" in offered
    assert "Newsletter readers" not in offered
    assert "Readers of readers" not in offered


def in_group(group_id: int) -> dict[str, Any]:
    return cond("array", "members_group_ids", "any", [group_id])


def test_a_bad_value_is_refused_at_its_row(
    page: Page, staff: str, log_in: Step, shot: Shot, shoppers: dict[int, int]
) -> None:
    log_in(staff)
    new_group_form(page, "Middle points")
    page.get_by_role("button", name="Add condition", exact=True).click()
    pick_field(page, "1", "first name")
    row(page, "1").get_by_label("Value of condition 1").fill("Ola")
    page.get_by_role("button", name="Add condition", exact=True).click()
    pick_field(page, "2", "points (number)")
    pick_operator(page, "2", "is between")
    row(page, "2").get_by_label("Value of condition 2, from").fill("100")
    row(page, "2").get_by_label("Value of condition 2, to").fill("10")

    error = row(page, "2").locator(".rb-error")
    expect(error).to_have_text("value: The first value is greater than the second.")
    expect(row(page, "1").locator(".rb-error")).to_be_hidden()
    expect(row(page, "2").get_by_label("Value of condition 2, from")).to_have_attribute(
        "aria-invalid", "true"
    )
    expect(count(page)).to_have_text("Fix the condition marked above to count the members.")
    shot("rule-builder-bad-value", page.locator(".field-audience_conditions"))

    page.click("input[name=_save]")
    expect(page.locator(".errornote")).to_be_visible()
    assert not MembersGroup.objects.filter(name="Middle points").exists()
    # The page comes back with the rule as it was sent, the error at the same row.
    expect(row(page, "2").locator(".rb-error")).to_have_text(
        "value: The first value is greater than the second."
    )
    row(page, "2").get_by_label("Value of condition 2, to").fill("150")
    expect(row(page, "2").locator(".rb-error")).to_be_hidden()
    wanted = [
        member
        for n, member in shoppers.items()
        if shopper(n)["first_name"] == "Ola" and 100 <= shopper(n)["points"] <= 150
    ]
    expect(count(page)).to_contain_text(f"{len(wanted)} members match")
    save(page)
    assert member_ids(MembersGroup.objects.get(name="Middle points")) == set(wanted)


def test_the_json_view_and_back_change_nothing(
    page: Page, staff: str, log_in: Step, red: Club
) -> None:
    gold = services.create_group(club=red, name="Gold")
    rule = [
        {
            "condition_group": "member_properties",
            "type": "string",
            "field": "first_name",
            "operator": "in",
            "value": ["Ola", "Kari"],
            "note": "kept by the builder, unknown to it",
        },
        {
            "operator": "or",
            "conditions": [
                cond("array", "members_group_ids", "none", [gold.pk]),
                {
                    "operator": "not",
                    "conditions": [
                        cond("date", "birthday", "between", ["1990-01-01", "1999-12-31"])
                    ],
                },
                {
                    "condition_group": "consents",
                    "type": "boolean",
                    "field": "news",
                    "operator": "eq",
                    "value": True,
                },
            ],
        },
        {"type": "number", "field": "points", "operator": "gte", "value": 1.5},
    ]
    group = services.create_group(club=red, name="Everyone but", audience_conditions=rule)
    log_in(staff)
    page.goto(f"/admin/groups/membersgroup/{group.pk}/change/")
    textarea = page.locator("#id_audience_conditions")
    expect(row(page, "2.2.1")).to_be_visible()
    expect(textarea).to_be_hidden()
    original = textarea.input_value()

    switch = page.locator(".rule-builder .rb-switch")
    switch.click()
    expect(textarea).to_be_visible()
    assert textarea.input_value() == original
    switch.click()
    expect(row(page, "2.2.1")).to_be_visible()
    expect(row(page, "2.1").locator(".rb-chip span")).to_have_text(["Gold"])
    expect(row(page, "2.3").locator("select.rb-field")).to_have_value("consents:news")
    switch.click()
    assert textarea.input_value() == original
    assert json.loads(textarea.input_value()) == rule

    # A change typed as JSON is in the builder when it comes back.
    textarea.fill(json.dumps([{**rule[0], "value": ["Ola"]}, *rule[1:]]))
    switch.click()
    expect(row(page, "1").get_by_label("Value of condition 1, one per line")).to_have_value("Ola")
    save(page)
    group.refresh_from_db()
    assert group.audience.conditions == [{**rule[0], "value": ["Ola"]}, *rule[1:]]


def test_a_rule_the_builder_cannot_show_opens_as_json_with_a_note(
    page: Page, staff: str, log_in: Step, red: Club
) -> None:
    group = services.create_group(
        club=red, name="Old rule", audience_conditions=[cond("string", "email", "present")]
    )
    older = [
        {
            "condition_group": "loyalty_tiers",
            "type": "string",
            "field": "tier",
            "operator": "eq",
            "value": "gold",
        }
    ]
    # As a rule written by an older version: stored without today's validation.
    Audience.objects.filter(pk=group.audience_id).update(conditions=older)
    log_in(staff)
    page.goto(f"/admin/groups/membersgroup/{group.pk}/change/")

    expect(page.locator("#id_audience_conditions")).to_be_visible()
    expect(page.locator(".rule-builder .rb-note")).to_contain_text(
        'condition 1 has the condition group "loyalty_tiers"'
    )
    page.locator(".rule-builder .rb-switch").click()
    expect(page.locator(".rule-builder .rb-note")).to_contain_text("keep it as JSON")
    expect(page.locator("#id_audience_conditions")).to_be_visible()
    assert json.loads(page.locator("#id_audience_conditions").input_value()) == older

    # One condition object, as the API takes it, is a rule of one row.
    single = cond("string", "email", "match", "@red.example")
    page.fill("#id_audience_conditions", json.dumps(single))
    expect(page.locator(".rule-builder .rb-note")).to_be_hidden()
    page.locator(".rule-builder .rb-switch").click()
    expect(row(page, "1").get_by_label("Value of condition 1")).to_have_value("@red.example")
    save(page)
    group.refresh_from_db()
    assert group.audience.conditions == [single]


def test_a_one_row_rule_is_created_with_the_keyboard_alone(
    page: Page, staff: str, log_in: Step, red: Club
) -> None:
    olas = Member.objects.filter(club=red, properties__first_name="Ola").count()
    log_in(staff)
    page.goto("/admin/groups/membersgroup/add/")
    page.focus("#id_club")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Tab")
    page.keyboard.type("Olas by keyboard")
    add = page.get_by_role("button", name="Add condition", exact=True)
    for _ in range(20):
        if add.evaluate("button => button === document.activeElement"):
            break
        page.keyboard.press("Tab")
    expect(add).to_be_focused()
    page.keyboard.press("Enter")

    field = row(page, "1").locator("select.rb-field")
    expect(field).to_be_focused()
    page.keyboard.type("first")
    expect(field).to_have_value("member_properties:first_name:string")
    expect(field).to_be_focused()
    page.keyboard.press("Tab")
    expect(row(page, "1").locator("select.rb-operator")).to_be_focused()
    page.keyboard.press("Tab")
    expect(row(page, "1").get_by_label("Value of condition 1")).to_be_focused()
    page.keyboard.type("Ola")
    expect(count(page)).to_contain_text(f"{olas} members match")
    page.keyboard.press("Enter")
    expect(page.locator(".messagelist .success")).to_be_visible()

    group = MembersGroup.objects.get(name="Olas by keyboard")
    assert group.audience.conditions == [cond("string", "first_name", "eq", "Ola")]
    assert group.members_count == olas


def test_an_audience_is_built_with_the_same_builder_also_from_fields_no_member_has_yet(
    page: Page, superuser: str, log_in: Step, red: Club, shoppers: dict[int, int]
) -> None:
    log_in(superuser)
    page.goto("/admin/audiences/audience/add/")
    page.select_option("#id_club", label="Red Club")
    page.fill("#id_name", "News readers")
    page.get_by_role("button", name="Add condition", exact=True).click()
    pick_field(page, "1", "consent news")
    news = [n for n in SHOPPERS if n % 4 == 0]
    expect(count(page)).to_contain_text(f"{len(news)} members match")
    page.get_by_role("button", name="Add condition", exact=True).click()
    pick_field(page, "2", "Another property or consent…")
    row(page, "2").get_by_label("Name of the property or consent of condition 2").fill("tier")
    row(page, "2").get_by_label("Type of the property of condition 2").select_option(label="text")
    row(page, "2").get_by_role("button", name="Use this property for condition 2").click()
    expect(row(page, "2").locator("select.rb-operator")).to_be_focused()
    expect(row(page, "2").locator("select.rb-field")).to_have_value("member_properties:tier:string")
    pick_operator(page, "2", "is blank")
    expect(page.locator(".rule-builder .rb-words-text")).to_have_text(
        "consent 'news' is given and tier is blank"
    )
    expect(count(page)).to_contain_text(f"{len(news)} members match")
    save(page)

    audience = Audience.objects.get(name="News readers")
    assert audience.conditions == [
        {
            "condition_group": "consents",
            "type": "boolean",
            "field": "consents.news",
            "operator": "eq",
            "value": True,
        },
        {
            "condition_group": "member_properties",
            "type": "string",
            "field": "tier",
            "operator": "blank",
        },
    ]


def test_every_button_of_the_builder_is_named_by_its_visible_text(
    page: Page, staff: str, log_in: Step, red: Club
) -> None:
    """WCAG 2.5.3 (label in name): what a speech-input user reads on a button, they can say."""
    gold = services.create_group(club=red, name="Gold")
    rule = [
        cond("array", "members_group_ids", "any", [gold.pk]),
        {"operator": "or", "conditions": [cond("string", "email", "present")]},
    ]
    group = services.create_group(club=red, name="Readers of gold", audience_conditions=rule)
    log_in(staff)
    page.goto(f"/admin/groups/membersgroup/{group.pk}/change/")
    # Once the catalogue is in (the chips named), nothing draws the rows again.
    expect(row(page, "1").locator(".rb-chip span")).to_have_text(["Gold"])
    pick_field(page, "2.1", "Another property or consent…")
    expect(row(page, "2.1").locator(".rb-other")).to_be_visible()

    texts = set()
    for button in page.locator(".rule-builder button:visible").all():
        text = button.inner_text().strip()
        texts.add(text)
        if text != "\u00d7":  # A symbol, not a text: its name says what it removes.
            expect(button).to_have_accessible_name(re.compile(re.escape(text), re.IGNORECASE))
    assert {"Add condition", "Add ANY group", "Add NOT group", "Remove", "Use", "Add"} <= texts
    for name in ("Add condition", "Add ANY group", "Add NOT group"):
        expect(page.get_by_role("button", name=name, exact=True)).to_have_count(1)
        expect(page.get_by_role("button", name=f"{name} to group 2", exact=True)).to_have_count(1)
    expect(
        page.get_by_role("button", name="Add ANY group", exact=True)
    ).to_have_accessible_description("A group of conditions of which any must hold")


def test_a_new_row_is_shown_invalid_only_once_the_user_leaves_it_or_saves(
    page: Page, staff: str, log_in: Step, red: Club
) -> None:
    log_in(staff)
    new_group_form(page, "Not yet filled in")
    page.get_by_role("button", name="Add condition", exact=True).click()
    first = row(page, "1")
    expect(first.locator("select.rb-field")).to_be_focused()

    # The preview refuses the empty value, but the row has only just appeared.
    expect(count(page)).to_have_text("Fill in the new condition to count the members.")
    expect(first).not_to_have_class(re.compile("rb-invalid"))
    expect(first.locator(".rb-error")).to_be_hidden()
    expect(first.get_by_label("Value of condition 1")).not_to_have_attribute("aria-invalid", "true")
    pick_operator(page, "1", "is not")
    expect(count(page)).to_have_text("Fill in the new condition to count the members.")
    expect(first.locator(".rb-error")).to_be_hidden()

    # Leaving the row shows its error.
    page.focus("#id_name")
    expect(first.locator(".rb-error")).to_have_text("value: Enter a text.")
    expect(first.get_by_label("Value of condition 1")).to_have_attribute("aria-invalid", "true")
    expect(count(page)).to_have_text("Fix the condition marked above to count the members.")

    # A second new row, saved as it is: the page comes back with both errors at their rows.
    page.get_by_role("button", name="Add condition", exact=True).click()
    expect(count(page)).to_have_text("Fix the condition marked above to count the members.")
    expect(row(page, "2").locator(".rb-error")).to_be_hidden()
    page.click("input[name=_save]")
    expect(page.locator(".errornote")).to_be_visible()
    for path in ("1", "2"):
        expect(row(page, path).locator(".rb-error")).to_have_text("value: Enter a text.")
    assert not MembersGroup.objects.filter(name="Not yet filled in").exists()
