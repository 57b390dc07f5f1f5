"""One-off sales of something other than the plan (a data top-up pack): an invoice of
one line on the service account, VAT as the ISP's settings say, either paid on the spot
by the payment that bought it or charged to the account like any bill.

A sale paid on the spot is settled by its own payment first, not by the oldest bill:
the subscriber paid for this pack, and a reminder for it afterwards would be wrong.
What the payment leaves over (M-Pesa takes whole shillings) and any credit held are
spread by `allocate` as for every payment. So the ledger holds the charge and the
payment, the invoice is paid, and nothing is left as stray credit or counted twice.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from billing import documents, periods
from billing.documents import Draft
from billing.ledger import ZERO, BillingError, Kind, allocate, credit_left, holding, record_entry
from billing.models import BillingSettings, Invoice, LedgerEntry


@dataclass(frozen=True)
class Paid:
    """The payment a sale is bought with: amount, the receipt, the ledger's words."""

    amount: Decimal
    reference: str
    description: str


@dataclass(frozen=True)
class Sale:
    invoice: Invoice
    payment: LedgerEntry | None


def total(price) -> Decimal:
    """What the customer pays for a sale at `price`: the price itself where the ISP's
    prices include VAT, the price plus VAT where they do not (documents.save splits
    the invoice the same way)."""
    cfg = BillingSettings.load()
    return periods.split_vat(Decimal(price), cfg.vat_rate, cfg.vat_inclusive)[2]


def sell(
    account, price, *, actor, reason: str, paid: Paid | None = None, at: datetime | None = None
) -> Sale:
    """Invoice `price` (before VAT where prices exclude it) to the account's customer,
    for `reason`. With `paid`, the payment is recorded and settles this invoice first,
    due today; without, the invoice waits with the usual due days and the customer's
    credit, if any, is allocated to it (billing.ledger.allocate)."""
    price = Decimal(price)
    if not price.is_finite() or price <= 0:
        raise BillingError("a sale needs a price above zero")
    if not reason.strip():
        raise BillingError("say what is sold")
    at = at or timezone.now()
    cfg = BillingSettings.load()
    day = timezone.localdate(at)
    customer = account.customer
    with transaction.atomic(), holding(customer.pk):
        draft = Draft(
            customer_id=customer.pk,
            account=account,
            lines=[documents.line(kind="other", description=reason, amount=price, account=account)],
            issued_on=day,
            due_on=day if paid else day + timedelta(days=cfg.due_days),
            reason=reason,
        )
        invoice = documents.save([draft], cfg, actor=actor, at=at)[0]
        entry = None
        if paid is not None:
            entry = record_entry(
                customer,
                Kind.PAYMENT,
                paid.amount,
                actor=actor,
                description=paid.description,
                reference=paid.reference,
                at=at,
            )
            _settle_first(invoice, customer)
        allocate(customer)
    invoice.refresh_from_db()
    return Sale(invoice, entry)


def _settle_first(invoice: Invoice, customer) -> None:
    """The new invoice takes what it wants of the customer's unallocated credit (which
    now holds the payment) before allocate spreads the rest oldest first."""
    locked = Invoice.objects.select_for_update().get(pk=invoice.pk)
    take = min(max(ZERO, credit_left(customer.pk)), locked.outstanding)
    if take <= 0:
        return
    locked.amount_paid += take
    if locked.outstanding <= 0:
        locked.status = Invoice.Status.PAID
    locked.save(update_fields=["amount_paid", "status"])
