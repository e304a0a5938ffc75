"""Money: strict parsing of decimal strings into integer minor units, formatting, Money arithmetic."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.errors import InvalidInput
from domain.money import MAX_MINOR, MINOR_UNITS, Money, check_currency, format_amount, parse_amount, to_major

CURRENCIES = sorted(MINOR_UNITS)


# ---------------------------------------------------------------- accepted


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("1234.56", "CNY", 123456),
        ("1234.5", "CNY", 123450),
        ("1234", "CNY", 123400),
        ("0.01", "CNY", 1),
        ("007.10", "USD", 710),
        ("1234", "JPY", 1234),
        ("5", "KRW", 5),
        ("1.234", "KWD", 1234),
        ("0.001", "BHD", 1),
        ("12345678901234567.89", "CNY", 1234567890123456789),
    ],
)
def test_parse_valid_amounts(text, currency, minor):
    assert parse_amount(text, currency) == minor


def test_zero_rejected_unless_allowed():
    with pytest.raises(InvalidInput) as exc:
        parse_amount("0.00", "CNY", "payment.amount")
    assert exc.value.field == "payment.amount"
    assert "greater than zero" in exc.value.reason
    assert parse_amount("0", "CNY", allow_zero=True) == 0
    assert parse_amount("0.00", "CNY", allow_zero=True) == 0


# ---------------------------------------------------------------- rejected, naming the field


@pytest.mark.parametrize(
    ("text", "currency", "reason"),
    [
        ("-1", "CNY", "negative"),
        ("-0.01", "CNY", "negative"),
        ("-0", "CNY", "negative"),
        ("NaN", "CNY", "not a plain decimal"),
        ("nan", "CNY", "not a plain decimal"),
        ("sNaN", "CNY", "not a plain decimal"),
        ("Infinity", "CNY", "not a plain decimal"),
        ("inf", "CNY", "not a plain decimal"),
        ("-inf", "CNY", "negative"),
        ("+5", "CNY", "not a plain decimal"),
        ("", "CNY", "empty"),
        ("   ", "CNY", "empty"),
        ("1.234", "CNY", "3 decimals but CNY allows at most 2"),
        ("1.230", "CNY", "3 decimals"),
        ("1.5", "JPY", "1 decimals but JPY allows at most 0"),
        ("1.2345", "KWD", "4 decimals but KWD allows at most 3"),
        ("1e3", "CNY", "not a plain decimal"),
        ("1E-2", "CNY", "not a plain decimal"),
        ("1,000.00", "CNY", "not a plain decimal"),
        ("1 000", "CNY", "not a plain decimal"),
        ("1_000", "CNY", "not a plain decimal"),
        ("1.", "CNY", "not a plain decimal"),
        (".5", "CNY", "not a plain decimal"),
        ("0x10", "CNY", "not a plain decimal"),
        ("12.3.4", "CNY", "not a plain decimal"),
        ("¥100", "CNY", "not a plain decimal"),
        ("100 CNY", "CNY", "not a plain decimal"),
        ("\u0661\u0662\u0663", "CNY", "not a plain decimal"),  # Arabic-Indic digits
        ("\uff11\uff12\uff13", "CNY", "not a plain decimal"),  # full-width digits
        ("1" * 30, "CNY", "too large"),
        ("92233720368547758.08", "CNY", "too large"),  # 2**63 minor units
    ],
)
def test_parse_rejects_with_reason_and_field(text, currency, reason):
    with pytest.raises(InvalidInput) as exc:
        parse_amount(text, currency, "payment.amount")
    assert exc.value.field == "payment.amount"
    assert reason in exc.value.reason
    assert str(exc.value).startswith("payment.amount: ")


def test_largest_amount_that_fits_a_ledger_column():
    assert parse_amount("92233720368547758.07", "CNY") == MAX_MINOR


@pytest.mark.parametrize("value", [12.5, 1234, Decimal("1.00"), None, b"1.00"])
def test_parse_rejects_non_strings(value):
    with pytest.raises(InvalidInput) as exc:
        parse_amount(value, "CNY", "amount")
    assert exc.value.field == "amount"
    assert "decimal string" in exc.value.reason


@pytest.mark.parametrize("currency", ["XYZ", "cny", "", "RMB", "CN", "CNYY"])
def test_unknown_currency_rejected(currency):
    with pytest.raises(InvalidInput) as exc:
        parse_amount("1.00", currency)
    assert exc.value.field == "currency"
    assert "unknown or unsupported currency" in exc.value.reason
    with pytest.raises(InvalidInput) as exc2:
        check_currency(currency, "loan.currency")
    assert exc2.value.field == "loan.currency"


def test_known_currencies_accepted():
    for c in CURRENCIES:
        assert check_currency(c) == c


# ---------------------------------------------------------------- formatting


@pytest.mark.parametrize(
    ("minor", "currency", "text"),
    [
        (123456, "CNY", "1234.56"),
        (5, "CNY", "0.05"),
        (0, "CNY", "0.00"),
        (-150, "USD", "-1.50"),
        (-5, "USD", "-0.05"),
        (1234, "JPY", "1234"),
        (-7, "KRW", "-7"),
        (1234, "KWD", "1.234"),
        (1, "BHD", "0.001"),
    ],
)
def test_format_amount(minor, currency, text):
    assert format_amount(minor, currency) == text


def test_to_major():
    assert to_major(123456, "CNY") == 1234.56
    assert to_major(1234, "JPY") == 1234.0
    assert to_major(1, "KWD") == 0.001


@settings(max_examples=300, deadline=None)
@given(minor=st.integers(min_value=1, max_value=MAX_MINOR), currency=st.sampled_from(CURRENCIES))
def test_format_then_parse_round_trips(minor, currency):
    assert parse_amount(format_amount(minor, currency), currency) == minor


@settings(max_examples=300, deadline=None)
@given(
    whole=st.integers(min_value=0, max_value=10**15),
    frac=st.integers(min_value=0, max_value=999),
    decimals=st.integers(min_value=0, max_value=3),
    currency=st.sampled_from(CURRENCIES),
)
def test_parse_is_exact_or_rejects(whole, frac, decimals, currency):
    """Whatever is accepted equals the decimal value exactly; extra decimals are always rejected."""
    text = f"{whole}.{frac % 10**decimals:0{decimals}d}" if decimals else str(whole)
    exponent = MINOR_UNITS[currency]
    value = Decimal(text) * 10**exponent
    if decimals > exponent:
        with pytest.raises(InvalidInput, match="decimals"):
            parse_amount(text, currency)
    elif value == 0:
        with pytest.raises(InvalidInput, match="greater than zero"):
            parse_amount(text, currency)
    else:
        assert parse_amount(text, currency) == int(value)
        assert Decimal(parse_amount(text, currency)) == value


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=12))
def test_parse_never_crashes_with_anything_but_invalid_input(text):
    try:
        minor = parse_amount(text, "CNY")
    except InvalidInput as exc:
        assert exc.field == "amount" and exc.reason
    else:
        assert isinstance(minor, int) and minor > 0
        assert all(c in "0123456789." for c in text.strip())


# ---------------------------------------------------------------- Money


def test_money_arithmetic_and_str():
    a = Money.parse("10.50", "CNY")
    b = Money(25, "CNY")
    assert a == Money(1050, "CNY")
    assert a + b == Money(1075, "CNY")
    assert a - b == Money(1025, "CNY")
    assert str(a) == "CNY 10.50"
    assert str(Money(-5, "JPY")) == "JPY -5"


def test_money_refuses_mixed_currencies():
    with pytest.raises(InvalidInput) as exc:
        Money(1, "CNY") + Money(1, "USD")
    assert exc.value.field == "currency"
    assert "cannot combine CNY with USD" in exc.value.reason
    with pytest.raises(InvalidInput):
        Money(1, "CNY") - Money(1, "USD")


def test_money_parse_names_field():
    with pytest.raises(InvalidInput) as exc:
        Money.parse("-3", "CNY", "fees")
    assert exc.value.field == "fees"


@pytest.mark.parametrize("text", [" 100.00", "100.00 ", "100.00\n", "\t1", "1\r\n"])
def test_amounts_with_spaces_or_line_breaks_around_them_are_refused(text):
    with pytest.raises(InvalidInput) as exc:
        parse_amount(text, "CNY")
    assert exc.value.field == "amount" and "spaces or line breaks" in exc.value.reason


def test_a_rejected_amount_is_not_echoed_whole():
    with pytest.raises(InvalidInput) as exc:
        parse_amount("9" * 1_000_000 + "x", "CNY")
    assert exc.value.field == "amount" and len(str(exc.value)) < 300
