"""Billing operations other apps call. The ledger, invoices and runs come with the
billing issue; until then a customer has no entries and so a zero balance."""

from decimal import Decimal


def customer_balance(customer) -> Decimal:
    """What the customer owes (positive) or holds in credit (negative)."""
    return Decimal("0.00")
