"""A seeded synthetic table of people with planted identifiers (Faker), and the truth about them.

Each row has direct identifiers (name, e-mail, phone, national id), quasi-identifiers (age, sex,
zip), a sensitive attribute (diagnosis), an income, a label that depends on age, income and sex,
and a free-text ``notes`` column in which e-mail addresses, payment-card numbers, IBANs, IP
addresses and phone numbers are planted among decoys that look alike but are none of them
(order numbers, dates, amounts, Luhn-failing 16-digit references, times, versions).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

__all__ = ["People", "people", "LOCALES", "PHONE_REGIONS"]

LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR")
PHONE_REGIONS = ("US", "GB", "DE", "FR")
DIAGNOSES = ("asthma", "diabetes", "flu", "migraine", "healthy", "hypertension")


@dataclass
class People:
    frame: object  # pandas.DataFrame
    planted: list[list[tuple[str, str]]]  # per row: (kind, raw value) planted in notes

    def values(self, kind: str) -> list[str]:
        return [v for row in self.planted for k, v in row if k == kind]


def _grouped(text: str, sep: str) -> str:
    return sep.join(text[i : i + 4] for i in range(0, len(text), 4))


def _luhn_failing(rng: random.Random) -> str:
    from stdnum import luhn

    while True:
        digits = "".join(rng.choice("0123456789") for _ in range(16))
        if not luhn.is_valid(digits):
            return digits


def people(n: int = 10_000, seed: int = 0):
    """``People`` with ``n`` rows, the same for the same seed."""
    import pandas as pd
    from faker import Faker

    Faker.seed(seed)
    fakers = [Faker(loc) for loc in LOCALES]
    for i, f in enumerate(fakers):
        f.seed_instance(seed * 100 + i)
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    rows, planted = [], []
    for i in range(n):
        f = fakers[i % len(fakers)]
        age = int(nrng.integers(18, 90))
        sex = str(rng.choice("FM"))
        income = int(max(5_000, nrng.normal(30_000 + 600 * min(age, 60), 12_000)))
        score = (age - 50) / 15 + (income - 55_000) / 20_000 + (0.4 if sex == "F" else -0.4) + nrng.normal(0, 0.7)
        ids: list[tuple[str, str]] = []
        sentences = []
        email = f.email()
        ids.append(("email", email))
        sentences.append(
            rng.choice(["Contact {} for details.", "E-mail: {}", "wrote from <{}> yesterday"]).format(email)
        )
        if rng.random() < 0.8:
            phone = f.phone_number()
            ids.append(("phone", phone))
            sentences.append(rng.choice(["Call {} after 5pm.", "phone {}", "Tel.: {}"]).format(phone))
        if rng.random() < 0.6:
            card = f.credit_card_number()
            shown = rng.choice([card, _grouped(card, " "), _grouped(card, "-")]) if len(card) == 16 else card
            ids.append(("card", shown))
            sentences.append(rng.choice(["Card on file {}.", "paid with {}", "card: {}"]).format(shown))
        if rng.random() < 0.6:
            iban = f.iban()
            shown = rng.choice([iban, _grouped(iban, " ")])
            ids.append(("iban", shown))
            sentences.append(rng.choice(["Refund to IBAN {}.", "account {} (SEPA)", "IBAN: {}"]).format(shown))
        if rng.random() < 0.6:
            ip = f.ipv4() if rng.random() < 0.7 else f.ipv6()
            ids.append(("ip", ip))
            sentences.append(rng.choice(["Last login from {}.", "ip={}", "seen at {}"]).format(ip))
        decoys = [
            f"Order #{rng.randint(10_000_000, 99_999_999)} shipped on {f.date()}.",
            f"Paid ${rng.randint(1, 9_999)}.{rng.randint(0, 99):02d} on {f.date()}.",
            f"Ref {_luhn_failing(rng)} noted.",
            f"Visit at {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}, room {rng.randint(100, 999)}.",
            f"App version {rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 50)} installed.",
        ]
        sentences.extend(rng.sample(decoys, 2))
        rng.shuffle(sentences)
        rows.append(
            {
                "person_id": 100_000 + i,
                "name": f.name(),
                "email": email,
                "phone": f.phone_number(),
                "national_id": f.ssn(),
                "age": age,
                "sex": sex,
                "zip": f"{nrng.integers(0, 100_000):05d}",
                "income": income,
                "diagnosis": str(rng.choice(DIAGNOSES)),
                "notes": " ".join(sentences),
                "label": "high" if score > 0 else "low",
            }
        )
        planted.append(ids)
    return People(pd.DataFrame(rows), planted)
