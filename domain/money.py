"""Money in integer minor units with an ISO 4217 currency; never floats."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated

from pydantic import Field

from domain.errors import InvalidInput, shown

# ISO 4217 minor-unit exponents of the currencies a lender here deals in.
MINOR_UNITS: dict[str, int] = {
    "CNY": 2,
    "HKD": 2,
    "MOP": 2,
    "TWD": 2,
    "USD": 2,
    "EUR": 2,
    "GBP": 2,
    "SGD": 2,
    "AUD": 2,
    "CAD": 2,
    "CHF": 2,
    "JPY": 0,
    "KRW": 0,
    "KWD": 3,
    "BHD": 3,
}

# ASCII digits only: `\d` would also accept Arabic-Indic or full-width digits.
_AMOUNT = re.compile(r"[0-9]+(\.[0-9]+)?")
# Minor units must fit a signed 64-bit ledger column.
MAX_MINOR = 2**63 - 1
# An amount in integer minor units as a pydantic field: what crosses from the workflow to the ledger
# (activities/contracts.py); never negative, never a string or a float (strict), and it fits the ledger's column.
Minor = Annotated[int, Field(ge=0, le=MAX_MINOR, strict=True, description="integer minor units of the currency")]


def check_currency(currency: str, field: str = "currency") -> str:
    if currency not in MINOR_UNITS:
        raise InvalidInput(field, f"unknown or unsupported currency {shown(currency)} (ISO 4217 code, e.g. CNY)")
    return currency


def parse_amount(text: str, currency: str, field: str = "amount", *, allow_zero: bool = False) -> int:
    """Strictly parse a decimal string ("1234.56") into minor units of `currency`."""
    check_currency(currency)
    if not isinstance(text, str):
        raise InvalidInput(field, f"must be a decimal string such as '1234.56', got {type(text).__name__}")
    raw = text.strip()
    if raw == "":
        raise InvalidInput(field, "is empty")
    if raw != text:
        raise InvalidInput(field, f"has spaces or line breaks around it ({shown(text)}); send the digits alone, e.g. '1234.56'")
    if raw.startswith("-"):
        raise InvalidInput(field, f"must not be negative ({shown(text)})")
    if not _AMOUNT.fullmatch(raw):
        raise InvalidInput(
            field, f"is not a plain decimal amount ({shown(text)}); write digits with an optional '.', e.g. 1234.56"
        )
    exponent = MINOR_UNITS[currency]
    decimals = len(raw.partition(".")[2])
    if decimals > exponent:
        raise InvalidInput(field, f"has {decimals} decimals but {currency} allows at most {exponent} ({shown(text)})")
    whole, _, frac = raw.partition(".")
    whole = whole.lstrip("0") or "0"
    if len(whole) > 19:
        raise InvalidInput(field, f"is too large ({shown(text)})")
    # Exact integer arithmetic: Decimal.scaleb rounds to the context's 28 digits.
    minor = int(whole + frac.ljust(exponent, "0"))
    if minor > MAX_MINOR:
        raise InvalidInput(field, f"is too large ({shown(text)})")
    if minor == 0 and not allow_zero:
        raise InvalidInput(field, "must be greater than zero")
    return minor


def format_amount(minor: int, currency: str) -> str:
    """Minor units back to a plain decimal string: 123456 CNY -> '1234.56'."""
    exponent = MINOR_UNITS[currency]
    if exponent == 0:
        return str(minor)
    sign = "-" if minor < 0 else ""
    whole, frac = divmod(abs(minor), 10**exponent)
    return f"{sign}{whole}.{frac:0{exponent}d}"


def to_major(minor: int, currency: str) -> float:
    """Major units as a float, only for display and the OutstandingAmount search attribute."""
    return minor / 10 ** MINOR_UNITS[currency]


@dataclass(frozen=True, slots=True)
class Money:
    minor: int
    currency: str

    @classmethod
    def parse(cls, text: str, currency: str, field: str = "amount") -> Money:
        return cls(parse_amount(text, currency, field), currency)

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.minor + other.minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.minor - other.minor, self.currency)

    def _same(self, other: Money) -> None:
        if other.currency != self.currency:
            raise InvalidInput("currency", f"cannot combine {self.currency} with {other.currency}")

    def __str__(self) -> str:
        return f"{self.currency} {format_amount(self.minor, self.currency)}"
