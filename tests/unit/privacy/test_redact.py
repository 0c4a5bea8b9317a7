"""Redaction of identifiers in free text, with the checksums held to published test vectors."""

from __future__ import annotations

import pytest

from modelyard.privacy.redact import find, redact

# Card numbers the card networks publish for testing (PayPal/Stripe test-card lists): all pass Luhn.
TEST_CARDS = ["4111111111111111", "5555555555554444", "378282246310005", "6011111111111117", "3530111333300000"]
# IBANs from the SWIFT IBAN registry's examples.
TEST_IBANS = ["GB82WEST12345698765432", "DE89370400440532013000", "FR1420041010050500013M02606", "NL91ABNA0417164300"]


def _kinds(text: str, **kw) -> list[tuple[str, str]]:
    return [(f.kind, text[f.start : f.end]) for f in find(text, **kw)]


@pytest.mark.parametrize("card", TEST_CARDS)
def test_published_test_cards_are_found(card: str) -> None:
    assert _kinds(f"paid with {card} today") == [("card", card)]


def test_luhn_decides_between_card_and_not_card() -> None:
    # Wikipedia's Luhn example 7992 7398 713 is 11 digits; the 16-digit published card with its
    # last digit changed fails the checksum and is left alone.
    assert _kinds("ref 4111111111111112 noted") == []
    assert _kinds("card 4111 1111 1111 1111 and 4111-1111-1111-1111") == [
        ("card", "4111 1111 1111 1111"),
        ("card", "4111-1111-1111-1111"),
    ]
    # A grouping no issuer prints (3-3-3-4 like a phone), mixed separators: not a card.
    assert [k for k, _ in _kinds("call 411-111-111-1111")] != ["card"]
    assert _kinds("x 4111 1111-1111 1111 y") == []


def test_luhn_agrees_with_python_stdnum_on_random_numbers() -> None:
    import random

    from stdnum import luhn

    rng = random.Random(0)
    for _ in range(300):
        digits = "".join(rng.choice("0123456789") for _ in range(16))
        found = _kinds(f"n {digits} n", kinds=["card"])
        assert bool(found) == luhn.is_valid(digits), digits


@pytest.mark.parametrize("iban", TEST_IBANS)
def test_registry_ibans_are_found_compact_and_grouped(iban: str) -> None:
    grouped = " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))
    assert _kinds(f"to {iban}.") == [("iban", iban)]
    assert _kinds(f"to {grouped} OK") == [("iban", grouped)]  # the upper-case word after is not part of it


def test_mod97_rejects_a_changed_check_digit() -> None:
    assert _kinds("to GB83WEST12345698765432 now", kinds=["iban"]) == []
    assert _kinds("to GB82WEST12345698765433 now", kinds=["iban"]) == []


def test_ip_addresses_v4_and_v6() -> None:
    text = "from 192.168.0.1. and 2001:db8::8a2e:370:7334, not 999.1.1.1 or 1.2.3.4.5 or 12:30:45"
    assert _kinds(text, kinds=["ip"]) == [("ip", "192.168.0.1"), ("ip", "2001:db8::8a2e:370:7334")]


def test_emails() -> None:
    text = "write to jane.doe+news@mail.example.co.uk or <bob@example.org>; not a@b or @handle"
    assert _kinds(text, kinds=["email"]) == [
        ("email", "jane.doe+news@mail.example.co.uk"),
        ("email", "bob@example.org"),
    ]


def test_phone_numbers_and_decoys() -> None:
    text = (
        "Call (202) 555-0143 or +44 20 7946 0958, tel 030 901820. Order #48219377 on 2024-03-15 at 12:30, "
        "paid 1234.56, version 5.1.35."
    )
    found = _kinds(text, phone_regions=["US", "GB", "DE"])
    assert found == [("phone", "(202) 555-0143"), ("phone", "+44 20 7946 0958"), ("phone", "030 901820")]


def test_overlaps_keep_the_earlier_kind_and_redact_replaces_each_finding() -> None:
    text = "IBAN DE89 3704 0044 0532 0130 00, mail x@example.com, ip 10.0.0.1"
    out, findings = redact(text, phone_regions=["DE"])
    assert out == "IBAN [IBAN], mail [EMAIL], ip [IP]"
    assert [f.kind for f in findings] == ["iban", "email", "ip"]
    out, _ = redact(text, ["email"], placeholder="<{kind}>")
    assert out == "IBAN DE89 3704 0044 0532 0130 00, mail <EMAIL>, ip 10.0.0.1"


def test_without_the_privacy_extra_redaction_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from modelyard.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, "phonenumbers", None)  # import phonenumbers now raises ImportError
    with pytest.raises(MissingDependencyError) as info:
        find("call +44 20 7946 0958", kinds=["phone"])
    assert info.value.message == (
        "Redacting phone numbers needs the Python package phonenumbers: install it with pip install 'modelyard[privacy]'"
    )
