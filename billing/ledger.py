"""The customer ledger and what a customer owes.

- `customer_balance` is the sum of a customer's entries: the only balance there is.
- Every charge is an invoice and every credit a credit note (billing.documents); a
  payment is settled against invoices by `allocate` (oldest due first). So:
  balance = what open invoices still want - credit no invoice has taken yet,
  and `dues` answers "what does this customer owe, and what is overdue" for the pay
  page, the portal, every SMS, dunning, aged debt and reports.
- Lock order (every money transaction takes them in this order, so none can wait on
  another in a circle): customer rows (ascending id) -> service account rows ->
  invoice rows -> the numbering row (billing settings, taken last and only to number
  a document).
"""

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from django.db import transaction
from django.db.models import F, Min, Q, Sum
from django.utils import timezone

from billing.models import Invoice, LedgerEntry
from billing.periods import CENT
from ispops import audit
from subscribers.models import Customer

ZERO = Decimal("0.00")
Kind = LedgerEntry.Kind
_SIGN = {Kind.CHARGE: 1, Kind.REFUND: 1, Kind.PAYMENT: -1, Kind.CREDIT_NOTE: -1}


class BillingError(ValueError):
    """A billing operation the rules refuse; str() is the reason."""


def lock_customer(customer_id: int):
    """The customer's row lock: the first lock of every money transaction. NO KEY
    UPDATE, the mode an UPDATE takes: it serialises those transactions but not the rows
    that merely reference the customer (an invoice or ledger entry inserted by a billing
    run takes KEY SHARE on it, which this lock lets through)."""
    return Customer.objects.select_for_update(no_key=True).get(pk=customer_id)


def lock_customers(customer_ids) -> None:
    """`lock_customer` for many, in ascending id (the ledger's order)."""
    list(
        Customer.objects.select_for_update(no_key=True)
        .filter(pk__in=list(customer_ids))
        .order_by("id")
        .values_list("id", flat=True)
    )


def customer_balance(customer) -> Decimal:
    """What the customer owes (positive) or holds in credit (negative)."""
    total = LedgerEntry.objects.filter(customer=customer).aggregate(s=Sum("amount"))["s"]
    return (total or ZERO).quantize(CENT)


def balances(customer_ids) -> dict[int, Decimal]:
    rows = (
        LedgerEntry.objects.filter(customer_id__in=customer_ids)
        .values("customer_id")
        .annotate(s=Sum("amount"))
        .order_by()
    )
    return {r["customer_id"]: r["s"] for r in rows}


def signed(kind: str, amount) -> Decimal:
    """The entry's amount with the sign its kind has (amounts are given positive for
    every kind but adjustments)."""
    amount = Decimal(amount).quantize(CENT, rounding=ROUND_HALF_UP)
    if kind in _SIGN:
        if amount <= 0:
            raise BillingError(f"a {Kind(kind).label.lower()} needs an amount above zero")
        return amount * _SIGN[kind]
    if kind == Kind.ADJUSTMENT:
        if amount == 0:
            raise BillingError("an adjustment cannot be zero")
        return amount
    raise BillingError(f"unknown ledger entry kind {kind!r}")


def record_entry(
    customer,
    kind: str,
    amount,
    *,
    actor,
    description: str,
    invoice=None,
    service_account=None,
    reference: str = "",
    at=None,
) -> LedgerEntry:
    """Add one ledger entry (the customer row locked first)."""
    amount = signed(kind, amount)
    user, label = audit.describe_actor(actor)
    with transaction.atomic():
        lock_customer(customer.pk)
        entry = LedgerEntry.objects.create(
            customer=customer,
            kind=kind,
            amount=amount,
            description=description[:255],
            invoice=invoice,
            service_account=service_account,
            reference=reference[:40],
            at=at or timezone.now(),
            actor=user,
            actor_label=label,
        )
        audit.record(
            entry,
            "create",
            {
                "kind": kind,
                "amount": str(amount),
                "description": entry.description,
                "reference": entry.reference,
            },
            actor=actor,
        )
    return entry


def statement(customer):
    """The customer's entries, oldest first, each with the running balance."""
    running = ZERO
    rows = []
    for entry in LedgerEntry.objects.filter(customer=customer).select_related("invoice"):
        running += entry.amount
        rows.append((entry, running))
    return rows


# --- settling invoices -------------------------------------------------------------------


def _still_wanted(customer_id) -> Decimal:
    row = (
        Invoice.objects.invoices()
        .filter(customer_id=customer_id)
        .exclude(status=Invoice.Status.VOID)
        .aggregate(s=Sum(F("total") - F("amount_paid") - F("amount_credited")))
    )
    return row["s"] or ZERO


def credit_left(customer_id) -> Decimal:
    """What invoices still want minus what the ledger says is owed: money paid or
    credited that no invoice has taken yet (negative when invoices hold more than was
    paid: after a reversal, until `unallocate_excess`)."""
    balance = LedgerEntry.objects.filter(customer_id=customer_id).aggregate(s=Sum("amount"))["s"]
    return _still_wanted(customer_id) - (balance or ZERO)


def unallocated_credit(customer) -> Decimal:
    """Money paid or credited that no invoice has taken yet (never negative)."""
    return max(ZERO, credit_left(customer.pk))


def allocate(customer) -> list[Invoice]:
    """Spread the customer's unallocated credit over their open invoices, oldest due
    first."""
    with transaction.atomic():
        lock_customer(customer.pk)
        available = unallocated_credit(customer)
        if available <= 0:
            return []
        touched = []
        for invoice in (
            Invoice.objects.unpaid()
            .select_for_update()
            .filter(customer=customer)
            .order_by("due_on", "id")
        ):
            if available <= 0:
                break
            take = min(available, invoice.outstanding)
            if take <= 0:
                continue
            invoice.amount_paid += take
            available -= take
            if invoice.outstanding <= 0:
                invoice.status = Invoice.Status.PAID
            invoice.save(update_fields=["amount_paid", "status"])
            touched.append(invoice)
    return touched


def unallocate_excess(customer) -> None:
    """Invoices hold more paid than the ledger's credits cover (a payment reversed):
    reopen the newest."""
    excess = -credit_left(customer.pk)
    if excess <= 0:
        return
    for invoice in (
        Invoice.objects.invoices()
        .select_for_update()
        .filter(customer=customer, amount_paid__gt=0)
        .exclude(status=Invoice.Status.VOID)
        .order_by("-due_on", "-id")
    ):
        if excess <= 0:
            break
        take = min(excess, invoice.amount_paid)
        invoice.amount_paid -= take
        invoice.status = Invoice.Status.OPEN
        invoice.save(update_fields=["amount_paid", "status"])
        excess -= take


def credits_many(customer_ids) -> dict[int, Decimal]:
    """`unallocated_credit` of many customers in two grouped queries (those with none
    are left out)."""
    ids = list(customer_ids)
    wanted = dict(
        Invoice.objects.invoices()
        .filter(customer_id__in=ids)
        .exclude(status=Invoice.Status.VOID)
        .values_list("customer_id")
        .annotate(s=Sum(F("total") - F("amount_paid") - F("amount_credited")))
        .order_by()
    )
    owed = balances(ids)
    found = {}
    for cid in ids:
        credit = (wanted.get(cid) or ZERO) - (owed.get(cid) or ZERO)
        if credit > 0:
            found[cid] = credit
    return found


# --- what is owed --------------------------------------------------------------------------


@dataclass(frozen=True)
class Dues:
    """What a customer owes on `day`: `owed` in all, `overdue` of it past its due date,
    `credit` held (paid or credited and not yet used), the oldest unpaid due date."""

    owed: Decimal
    overdue: Decimal
    credit: Decimal
    oldest_due: date | None


def dues(customer, day: date) -> Dues:
    """The one answer to "what does this customer owe, and what is overdue" on `day`."""
    return dues_many([customer.pk], day).get(customer.pk, Dues(ZERO, ZERO, ZERO, None))


def dues_many(customer_ids, day: date) -> dict[int, Dues]:
    ids = list(customer_ids)
    open_by = {}
    for row in (
        Invoice.objects.unpaid()
        .filter(customer_id__in=ids)
        .values("customer_id")
        .annotate(
            owed=Sum(F("total") - F("amount_paid") - F("amount_credited")),
            overdue=Sum(
                F("total") - F("amount_paid") - F("amount_credited"), filter=Q(due_on__lt=day)
            ),
        )
        .order_by()
    ):
        open_by[row["customer_id"]] = row
    oldest = dict(
        Invoice.objects.unpaid()
        .filter(customer_id__in=ids)
        .values_list("customer_id")
        .annotate(m=Min("due_on"))
        .order_by()
    )
    credits = credits_many(ids)
    out = {}
    for cid in ids:
        credit = credits.get(cid, ZERO)
        row = open_by.get(cid, {})
        owed = max(ZERO, (row.get("owed") or ZERO) - credit)
        overdue = max(ZERO, (row.get("overdue") or ZERO) - credit)
        out[cid] = Dues(owed, overdue, credit, oldest.get(cid))
    return out
