"""Money: Decimal KES with two places, rounded half-up at every boundary, never float."""

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

CENT = Decimal("0.01")
ZERO = Decimal("0.00")


def to_money(value) -> Decimal:
    """A Decimal rounded to the cent, half up (2.345 -> 2.35). Refuses floats, whose
    binary value is not the number that was meant (2.675 is 2.67499...)."""
    if isinstance(value, float):
        raise TypeError("money must not be a float; pass a str, int or Decimal")
    try:
        amount = Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        raise ValueError(f"not an amount of money: {value!r}") from None
    if not amount.is_finite():
        raise ValueError(f"not an amount of money: {value!r}")
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def format_kes(value) -> str:
    """'KES 1,234.50' for display (templates, SMS, PDFs)."""
    amount = to_money(value)
    sign = "-" if amount < 0 else ""
    return f"{sign}KES {abs(amount):,.2f}"
