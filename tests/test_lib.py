"""Shared helpers: money rounding and phone normalisation."""

from decimal import Decimal

import pytest

from ispops.lib.money import format_kes, to_money
from ispops.lib.phones import InvalidPhone, normalise_phone


@pytest.mark.parametrize(
    "value,expected",
    [
        ("2.345", "2.35"),
        ("2.344", "2.34"),
        ("-2.345", "-2.35"),
        (1500, "1500.00"),
        (Decimal("0.005"), "0.01"),
        ("1e3", "1000.00"),
    ],
)
def test_money_rounds_half_up_to_the_cent(value, expected):
    assert to_money(value) == Decimal(expected)


@pytest.mark.parametrize("value", [2.5, "abc", "NaN", "Infinity", None])
def test_money_refuses_floats_and_garbage(value):
    with pytest.raises((TypeError, ValueError)):
        to_money(value)


def test_format_kes():
    assert format_kes("1234.5") == "KES 1,234.50"
    assert format_kes("-20") == "-KES 20.00"


@pytest.mark.parametrize(
    "raw",
    [
        "0712345678",
        "+254712345678",
        "254712345678",
        "712345678",
        "0712 345 678",
        "+254 (712) 345-678",
    ],
)
def test_safaricom_numbers_normalise(raw):
    assert normalise_phone(raw) == "254712345678"


def test_01_numbers_normalise():
    assert normalise_phone("0110123456") == "254110123456"
    assert normalise_phone("110123456") == "254110123456"


@pytest.mark.parametrize(
    "raw,reason",
    [
        ("", "empty"),
        ("hello", "not a phone"),
        ("0712", "not a valid"),
        ("+14155552671", "not a Kenyan"),
        ("0202123456", "not a mobile"),
    ],
)
def test_bad_phones_are_refused_with_a_reason(raw, reason):
    with pytest.raises(InvalidPhone, match=reason):
        normalise_phone(raw)


def test_a_request_over_the_size_limit_is_refused_unread(alpha, settings):
    settings.MAX_REQUEST_BYTES = 1000
    client = alpha.client(alpha.support)
    response = client.post(
        "/tickets/new/", data=b"x" * 2000, content_type="application/octet-stream"
    )
    assert response.status_code == 413
    assert b"at most" in response.content
    assert client.get("/tickets/").status_code == 200  # bodiless requests pass
