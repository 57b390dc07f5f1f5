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

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from django.db import connection, transaction
from django.db.models import F, QuerySet, Sum
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


# Customers whose row lock the running transaction holds, inside `holding` blocks: the
# operations below that lock the customer themselves skip the round trip there.
_held: ContextVar[frozenset] = ContextVar("held_customer_locks", default=frozenset())


def lock_customer(customer_id: int) -> None:
    """The customer's row lock: the first lock of every money transaction. NO KEY
    UPDATE, the mode an UPDATE takes: it serialises those transactions but not the rows
    that merely reference the customer (an invoice or ledger entry inserted by a billing
    run takes KEY SHARE on it, which this lock lets through)."""
    if customer_id in _held.get():
        return
    Customer.objects.select_for_update(no_key=True).values_list("id", flat=True).get(pk=customer_id)


@contextmanager
def holding(customer_id: int):
    """Lock the customer (`lock_customer`) for the rest of the transaction; calls made
    inside the block do not lock it again. The block sits inside `transaction.atomic`
    (with-blocks nest, so no savepoint that took the lock can roll back before the block
    ends, and the lock lasts as long as the block)."""
    if not connection.in_atomic_block:
        raise RuntimeError("holding() needs a transaction: the lock would end at once")
    lock_customer(customer_id)
    token = _held.set(_held.get() | {customer_id})
    try:
        yield
    finally:
        _held.reset(token)


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
    # No savepoint of its own: nothing in here fails but the database, and then the
    # caller's whole transaction is lost anyway.
    with transaction.atomic(savepoint=False):
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


def credit_left(customer_id) -> Decimal:
    """What invoices still want minus what the ledger says is owed: money paid or
    credited that no invoice has taken yet (negative when invoices hold more than was
    paid: after a reversal, until `unallocate_excess`). One statement: a payment asks
    this up to three times while a subscriber waits to get back online."""
    invoices, ledger = Invoice._meta.db_table, LedgerEntry._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT COALESCE((SELECT SUM(total - amount_paid - amount_credited) FROM "
            f"{invoices} WHERE customer_id = %s AND kind = %s AND status <> %s), 0) "
            f"- COALESCE((SELECT SUM(amount) FROM {ledger} WHERE customer_id = %s), 0)",
            [customer_id, Invoice.Kind.INVOICE, Invoice.Status.VOID, customer_id],
        )
        return cursor.fetchone()[0]


def unallocated_credit(customer) -> Decimal:
    """Money paid or credited that no invoice has taken yet (never negative)."""
    return max(ZERO, credit_left(customer.pk))


def allocate(customer) -> list[Invoice]:
    """Spread the customer's unallocated credit over their open invoices, oldest due
    first."""
    with transaction.atomic(savepoint=False):  # as record_entry
        lock_customer(customer.pk)
        # The open invoices first: a customer with none (most payments of a prepaid
        # subscriber) needs no credit worked out.
        open_invoices = list(
            Invoice.objects.unpaid()
            .select_for_update()
            .filter(customer=customer)
            .order_by("due_on", "id")
        )
        available = unallocated_credit(customer) if open_invoices else ZERO
        touched = []
        for invoice in open_invoices:
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
    are left out). `customer_ids`: ids, or a queryset of them (read as a subquery: a
    report over 100,000 customers sends no list of them)."""
    ids = customer_ids if isinstance(customer_ids, QuerySet) else list(customer_ids)
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
    # Only a customer with invoices or ledger entries can hold credit.
    for cid in wanted.keys() | owed.keys():
        credit = (wanted.get(cid) or ZERO) - (owed.get(cid) or ZERO)
        if credit > 0:
            found[cid] = credit
    return found


# --- what is owed --------------------------------------------------------------------------


@dataclass(frozen=True)
class Dues:
    """What a customer owes on `day`: `owed` in all, `overdue` of it past its due date,
    `credit` held (paid or credited and not yet used), the oldest unpaid due date, and
    `spare`: the credit the open invoices leave over."""

    owed: Decimal
    overdue: Decimal
    credit: Decimal
    oldest_due: date | None
    spare: Decimal = ZERO


def dues(customer, day: date) -> Dues:
    """The one answer to "what does this customer owe, and what is overdue" on `day`."""
    return dues_many([customer.pk], day).get(customer.pk, Dues(ZERO, ZERO, ZERO, None))


_DUES_SQL = """
SELECT c.id, i.owed, i.overdue, i.oldest, i.wanted, l.balance
FROM unnest(%(ids)s::bigint[]) AS c(id)
LEFT JOIN (
    SELECT customer_id,
        SUM(total - amount_paid - amount_credited) FILTER (WHERE status = %(open)s) AS owed,
        SUM(total - amount_paid - amount_credited)
            FILTER (WHERE status = %(open)s AND due_on < %(day)s) AS overdue,
        MIN(due_on) FILTER (WHERE status = %(open)s) AS oldest,
        SUM(total - amount_paid - amount_credited) AS wanted
    FROM {invoices}
    WHERE customer_id = ANY(%(ids)s) AND kind = %(invoice)s AND status <> %(void)s
    GROUP BY customer_id
) AS i ON i.customer_id = c.id
LEFT JOIN (
    SELECT customer_id, SUM(amount) AS balance FROM {ledger}
    WHERE customer_id = ANY(%(ids)s) GROUP BY customer_id
) AS l ON l.customer_id = c.id
"""


def dues_many(customer_ids, day: date) -> dict[int, Dues]:
    """`dues` of many customers in one statement: what their open invoices want (past
    due and not, the oldest due date), and what every invoice still wants and the
    ledger balance, whose difference is the credit held."""
    sql = _DUES_SQL.format(invoices=Invoice._meta.db_table, ledger=LedgerEntry._meta.db_table)
    params = {
        "ids": list(customer_ids),
        "day": day,
        "open": Invoice.Status.OPEN,
        "void": Invoice.Status.VOID,
        "invoice": Invoice.Kind.INVOICE,
    }
    out = {}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for cid, owed, overdue, oldest, wanted, balance in cursor.fetchall():
            credit = max(ZERO, (wanted or ZERO) - (balance or ZERO))
            out[cid] = Dues(
                max(ZERO, (owed or ZERO) - credit),
                max(ZERO, (overdue or ZERO) - credit),
                credit,
                oldest,
                max(ZERO, credit - (owed or ZERO)),
            )
    return out
