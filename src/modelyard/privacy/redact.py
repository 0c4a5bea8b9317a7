"""Find and redact identifiers in free text: e-mail addresses, payment-card numbers, IBANs, IP addresses, phones.

Each kind is a candidate pattern plus a check that a library does well: payment cards must pass
the Luhn checksum and IBANs the ISO 13616 mod-97 check and their country's format
(python-stdnum), IP addresses must parse (the standard library's ``ipaddress``), phone numbers
are found by Google's libphonenumber (``phonenumbers``). Every finder runs on the original text;
where two findings overlap, the kind earlier in ``KINDS`` wins (an IBAN's digits are not also a
phone number), then the longer one.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from modelyard.errors import optional_dependency

__all__ = ["KINDS", "Finding", "find", "redact", "check_regions"]

#: Identifier kinds in priority order (an overlap keeps the earlier kind).
KINDS = ("email", "iban", "card", "ip", "phone")


@dataclass(frozen=True)
class Finding:
    kind: str
    start: int
    end: int


# RFC 5322's dot-atom local part, and a domain of labels ending in a letters-only top-level label.
_EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}(?![\w-])"
)
# Country code, check digits, then up to 30 letters/digits, optionally in groups of 4 (the print form).
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,30}(?![A-Za-z0-9])")
# 12 to 19 digits (ISO/IEC 7812 lengths in use), optionally grouped by spaces or dashes; not after
# a "+" (an international phone number).
_CARD = re.compile(r"(?<![\d+-])\d(?:[ -]?\d){11,18}(?![\d-])")
# How issuers print card numbers: 4-4-4-4(-3), 4-6-5 (Amex), 4-6-4 (Diners). Other groupings are
# phone numbers or references ("001-557-439-5925").
_CARD_GROUPS = re.compile(r"\d{4}(?:[ -]\d{4})*(?:[ -]\d{1,4})?|\d{4}[ -]\d{6}[ -]\d{4,5}")
# A sentence's full stop may follow an address ("from 10.0.0.1."); a fifth number may not.
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\w|\.\d)")
_IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?(?![\w:])")
# Runs that libphonenumber may take for a number but that are dates, times, versions or amounts:
# 2024-03-15, 15.03.2024, 12:30, 5.1.35, 8017.13.
_NOT_PHONE = re.compile(
    r"^(?:\d{4}-\d{2}-\d{2}|\d{1,2}[./]\d{1,2}[./]\d{2,4}|\d{1,2}(?::\d{2}){1,2}|\d{1,3}(?:\.\d{1,3}){1,3}|\d+[.,]\d{2})$"
)
_FORMATTED = re.compile(r"[\s().+-]")
# A number in national form that libphonenumber refuses for its region (an area code that does not
# exist, "00970 786574"): the trunk prefix 0, an area code (maybe in parentheses), 10 to 12 digits.
_NATIONAL = re.compile(r"(?<![\w+.-])\(?0\d{1,5}\)?[ /-]?\d{3,9}(?![\w-]|\.\d)")


def _emails(text: str) -> Iterator[tuple[int, int]]:
    for m in _EMAIL.finditer(text):
        yield m.start(), m.end()


def _ibans(text: str) -> Iterator[tuple[int, int]]:
    with optional_dependency("privacy", "Redacting IBANs"):
        from stdnum import iban

    for m in _IBAN.finditer(text):
        # The pattern may run on into a following upper-case word ("... 7654 32 OK"): the longest
        # prefix that ends at a group boundary and passes mod-97 is the IBAN.
        candidate = m.group(0)
        ends = [len(candidate)] + [i for i in range(len(candidate) - 1, 14, -1) if candidate[i] == " "]
        for end in ends:
            if iban.is_valid(candidate[:end]):
                yield m.start(), m.start() + end
                break


def _cards(text: str) -> Iterator[tuple[int, int]]:
    with optional_dependency("privacy", "Redacting payment-card numbers"):
        from stdnum import luhn

    for m in _CARD.finditer(text):
        raw = m.group(0)
        digits = re.sub(r"[ -]", "", raw)
        grouped = raw == digits or (len(set(re.findall(r"[ -]", raw))) == 1 and _CARD_GROUPS.fullmatch(raw))
        if grouped and luhn.is_valid(digits):
            yield m.start(), m.end()


def _ips(text: str) -> Iterator[tuple[int, int]]:
    for pattern in (_IPV4, _IPV6):
        for m in pattern.finditer(text):
            try:
                ipaddress.ip_address(m.group(0))
            except ValueError:
                continue
            yield m.start(), m.end()


def _phones(text: str, regions: tuple[str, ...]) -> Iterator[tuple[int, int]]:
    with optional_dependency("privacy", "Redacting phone numbers"):
        import phonenumbers

    # libphonenumber's POSSIBLE leniency (length rules only: VALID missed half of Faker's US numbers,
    # which come from unassigned blocks) finds too much in prose, so a match must also have a full
    # number's length (10+ digits; a bare run of at most 13, longer ones are references), or be valid
    # for its region and written as phone numbers are (separators, "+", parentheses), not as an
    # 8-digit order number.
    for region in regions or (None,):
        for match in phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.POSSIBLE):
            raw = match.raw_string
            if _NOT_PHONE.match(raw):
                continue
            digits = sum(c.isdigit() for c in raw)
            formatted = _FORMATTED.search(raw) is not None
            if (digits >= 10 and (formatted or digits <= 13)) or (
                formatted and phonenumbers.is_valid_number(match.number)
            ):
                yield match.start, match.end
    for m in _NATIONAL.finditer(text):
        if 10 <= sum(c.isdigit() for c in m.group(0)) <= 12:
            yield m.start(), m.end()


_FINDERS: dict[str, Callable[..., Iterable[tuple[int, int]]]] = {
    "email": _emails,
    "iban": _ibans,
    "card": _cards,
    "ip": _ips,
}


def check_regions(regions: Iterable[str]) -> list[str]:
    """The phone regions that libphonenumber does not know (ISO 3166 codes such as US, DE)."""
    with optional_dependency("privacy", "Redacting phone numbers"):
        import phonenumbers

    return [r for r in regions if r not in phonenumbers.SUPPORTED_REGIONS]


def find(text: str, kinds: Iterable[str] = KINDS, *, phone_regions: Iterable[str] = ()) -> list[Finding]:
    """Non-overlapping findings of ``kinds`` in ``text``, in text order."""
    wanted = [k for k in KINDS if k in set(kinds)]
    found: list[Finding] = []
    for kind in wanted:
        spans = _phones(text, tuple(phone_regions)) if kind == "phone" else _FINDERS[kind](text)
        found.extend(Finding(kind, s, e) for s, e in spans)
    priority = {k: i for i, k in enumerate(wanted)}
    found.sort(key=lambda f: (priority[f.kind], -(f.end - f.start), f.start))
    kept: list[Finding] = []
    for candidate in found:
        if all(candidate.end <= k.start or candidate.start >= k.end for k in kept):
            kept.append(candidate)
    return sorted(kept, key=lambda f: f.start)


def redact(
    text: str, kinds: Iterable[str] = KINDS, *, phone_regions: Iterable[str] = (), placeholder: str = "[{kind}]"
) -> tuple[str, list[Finding]]:
    """``text`` with every finding replaced by ``placeholder`` (``[EMAIL]``, ``[CARD]``, ...), and the findings."""
    findings = find(text, kinds, phone_regions=phone_regions)
    out: list[str] = []
    at = 0
    for f in findings:
        out.append(text[at : f.start])
        out.append(placeholder.format(kind=f.kind.upper()))
        at = f.end
    out.append(text[at:])
    return "".join(out), findings
