"""Identifier normalisation shared by members, bulk calls and filters (no database)."""

from __future__ import annotations

import pytest

from members.normalize import InvalidIdentifier, normalize_email, normalize_id, normalize_msisdn


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (" Ann@Example.COM ", "ann@example.com"),
        ('"quoted"@example.com', '"quoted"@example.com'),
        ("a@[1.2.3.4]", "a@[1.2.3.4]"),
    ],
)
def test_emails_are_trimmed_and_lower_cased(raw: str, expected: str) -> None:
    assert normalize_email(raw) == expected


@pytest.mark.parametrize(
    "raw", ["a..b@x.io", ".a@x.io", "a@x", "a@-x.io", "", 42, "x" * 250 + "@a.io"]
)
def test_malformed_emails_are_refused(raw: object) -> None:
    with pytest.raises(InvalidIdentifier):
        normalize_email(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+47 407 69 126", "4740769126"),
        ("0047-407-69-126", "4740769126"),
        ("4740769126", "4740769126"),
        ("(+47) 407.69.126", "4740769126"),
        (4740769126, "4740769126"),
    ],
)
def test_msisdns_become_e164_digits(raw: object, expected: str) -> None:
    assert normalize_msisdn(raw) == expected


@pytest.mark.parametrize(
    "raw", ["40769", "+0 123 456 789", "47 407 69 12x", "1" * 16, "٤٧٤٠٧٦٩١٢٦", None]
)
def test_malformed_msisdns_are_refused(raw: object) -> None:
    with pytest.raises(InvalidIdentifier):
        normalize_msisdn(raw)


def test_ids_accept_digit_strings_and_refuse_the_rest() -> None:
    assert normalize_id(" 42 ") == 42
    for raw in (0, -1, True, 1.5, "x", 2**63):
        with pytest.raises(InvalidIdentifier):
            normalize_id(raw)
