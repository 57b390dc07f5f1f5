"""Invoices and credit notes: numbering (gapless, per kind), storing a document with its
lines and its ledger entry, and settling a credit note against the invoice it credits.

Every charge a customer gets is an invoice and every credit a credit note linked to the
invoice it credits, with that invoice's VAT rate and mode, so the ledger, what invoices
still want and what customers are told always agree. The numbering row (billing
settings) is locked last in a transaction (billing.ledger says the order) and held only
until the transaction ends.
"""

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from django.db import connection
from django.db.models import Sum

from billing import periods
from billing.ledger import ZERO, Kind
from billing.models import BillingSettings, Invoice, InvoiceLine, LedgerEntry
from ispops import audit

INVOICE = Invoice.Kind.INVOICE
CREDIT_NOTE = Invoice.Kind.CREDIT_NOTE


def take_numbers(kind: str, count: int) -> list[str]:
    """`count` consecutive numbers of an invoice or credit-note counter, under the row
    lock: a rolled-back transaction gives them back, so numbers stay gapless."""
    if count <= 0:
        return []
    field_name, prefix_name = (
        ("next_invoice_number", "invoice_prefix")
        if kind == INVOICE
        else ("next_credit_note_number", "credit_note_prefix")
    )
    table = connection.ops.quote_name(BillingSettings._meta.db_table)
    field, prefix_field = (connection.ops.quote_name(n) for n in (field_name, prefix_name))
    # One statement: the UPDATE takes the row lock and returns the numbers it reserved.
    sql = (
        f"UPDATE {table} SET {field} = {field} + %s WHERE id = 1 "
        f"RETURNING {field} - %s, {prefix_field}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [count, count])
        row = cursor.fetchone()
        if row is None:  # no settings row yet: make it, then number
            BillingSettings.load()
            cursor.execute(sql, [count, count])
            row = cursor.fetchone()
    first, prefix = row
    return [f"{prefix}-{n:06d}" for n in range(first, first + count)]


@dataclass
class Draft:
    """A document worked out in memory, before it is numbered and stored. A credit
    note names the invoice it credits and takes that invoice's VAT rate and mode."""

    customer_id: int
    account: object  # a ServiceAccount or None
    lines: list  # unsaved InvoiceLine rows
    issued_on: date
    due_on: date
    credits: Invoice | None = None
    reason: str = ""
    period: tuple[date, date] | None = None  # [start, end) of the billing period

    @property
    def kind(self) -> str:
        return CREDIT_NOTE if self.credits is not None else INVOICE

    @property
    def amount(self) -> Decimal:
        return sum((line.amount for line in self.lines), ZERO)


def save(drafts: list[Draft], cfg: BillingSettings, *, actor, at: datetime, run=None):
    """Number and store drafts with their lines and ledger entries (bulk: a billing run
    stores thousands at once), then settle credit notes against their invoices.
    Returns the stored documents in the drafts' order."""
    if not drafts:
        return []
    numbers = {
        kind: iter(take_numbers(kind, sum(1 for d in drafts if d.kind == kind)))
        for kind in (INVOICE, CREDIT_NOTE)
    }
    user, label = audit.describe_actor(actor)
    left = _left_to_credit(drafts)
    docs = []
    for draft in drafts:
        rate = draft.credits.vat_rate if draft.credits else cfg.vat_rate
        inclusive = draft.credits.vat_inclusive if draft.credits else cfg.vat_inclusive
        subtotal, vat, total = periods.split_vat(draft.amount, rate, inclusive)
        if draft.credits is not None:
            subtotal, vat, total = _within(left[draft.credits.pk], draft.amount, vat, inclusive)
        start, end = draft.period or (None, None)
        docs.append(
            Invoice(
                number=next(numbers[draft.kind]),
                kind=draft.kind,
                credits=draft.credits,
                customer_id=draft.customer_id,
                service_account=draft.account,
                period_start=start,
                period_end=periods.last_day(end) if end else None,
                issued_on=draft.issued_on,
                due_on=draft.due_on,
                subtotal=subtotal,
                vat=vat,
                total=total,
                vat_rate=rate,
                vat_inclusive=inclusive,
                billing_run=run,
                created_at=at,
                reason=draft.reason[:255],
                status=Invoice.Status.OPEN
                if draft.kind == INVOICE and total > 0
                else Invoice.Status.PAID,
            )
        )
    Invoice.objects.bulk_create(docs, batch_size=2000)
    lines, entries = [], []
    for doc, draft in zip(docs, drafts, strict=True):
        for line in draft.lines:
            line.invoice = doc
            lines.append(line)
        if doc.total == 0:
            continue
        entries.append(
            LedgerEntry(
                customer_id=doc.customer_id,
                kind=Kind.CHARGE if doc.kind == INVOICE else Kind.CREDIT_NOTE,
                amount=doc.total,
                description=_entry_text(doc, draft),
                invoice=doc,
                service_account=draft.account,
                reference=doc.number,
                at=at,
                actor=user,
                actor_label=label,
            )
        )
    InvoiceLine.objects.bulk_create(lines, batch_size=5000)
    LedgerEntry.objects.bulk_create(entries, batch_size=5000)
    settle_credit_notes([doc for doc in docs if doc.kind == CREDIT_NOTE])
    return docs


def _left_to_credit(drafts: list[Draft]) -> dict[int, dict[str, Decimal]]:
    """What each invoice the drafts credit has not been credited yet: subtotal, VAT and
    total (credit notes hold negative amounts)."""
    credited = {d.credits.pk: d.credits for d in drafts if d.credits is not None}
    left = {
        pk: {"subtotal": i.subtotal, "vat": i.vat, "total": i.total} for pk, i in credited.items()
    }
    if left:
        for row in (
            Invoice.objects.filter(kind=CREDIT_NOTE, credits_id__in=list(left))
            .values("credits_id")
            .annotate(subtotal=Sum("subtotal"), vat=Sum("vat"), total=Sum("total"))
            .order_by()
        ):
            for field in ("subtotal", "vat", "total"):
                left[row["credits_id"]][field] += row[field]
    return left


def _within(left: dict[str, Decimal], amount: Decimal, vat: Decimal, inclusive: bool):
    """(subtotal, VAT, total) of a credit note of `amount` (its lines' sum, negative),
    its VAT `vat` as rounded on its own, against an invoice with `left` still to credit.
    Credit notes each rounding their own VAT could together give back a cent more VAT
    than the invoice charged (or leave a cent of it owed once every line is credited):
    the note that credits what is left takes exactly the VAT left, and none takes more."""
    basis = left["total"] if inclusive else left["subtotal"]
    vat_left = max(left["vat"], ZERO)
    vat = -vat_left if -amount >= basis else max(vat, -vat_left)
    subtotal, total = (amount - vat, amount) if inclusive else (amount, amount + vat)
    for field, value in (("subtotal", subtotal), ("vat", vat), ("total", total)):
        left[field] += value
    return subtotal, vat, total


def _entry_text(doc: Invoice, draft: Draft) -> str:
    if doc.kind == CREDIT_NOTE:
        text = f"Credit note {doc.number} for {draft.credits.number}"
    else:
        text = f"Invoice {doc.number}"
    return f"{text}: {draft.reason}"[:255] if draft.reason else text


def settle_credit_notes(notes: list[Invoice]) -> None:
    """Take credit notes off what their invoices still want (the invoices locked, in id
    order); what an invoice no longer wants (it was paid) stays with the customer as
    credit for `allocate`."""
    if not notes:
        return
    invoices = {
        i.pk: i
        for i in Invoice.objects.select_for_update()
        .filter(pk__in={n.credits_id for n in notes})
        .order_by("id")
    }
    for note in notes:
        invoice = invoices[note.credits_id]
        take = min(-note.total, max(ZERO, invoice.outstanding))
        if take <= 0:
            continue
        invoice.amount_credited += take
        if invoice.outstanding <= 0 and invoice.status == Invoice.Status.OPEN:
            invoice.status = Invoice.Status.PAID
    _store_settled(list(invoices.values()))


def _store_settled(invoices: list[Invoice]) -> None:
    """Write invoices' credited amounts and statuses: one statement per row, sent in one
    pipeline (bulk_update's CASE expressions cost more Python than the rows do)."""
    with connection.cursor() as cursor:
        cursor.executemany(
            f"UPDATE {Invoice._meta.db_table} SET amount_credited = %s, status = %s WHERE id = %s",
            [(i.amount_credited, i.status, i.pk) for i in invoices],
        )


def line(
    *,
    kind: str,
    description: str,
    amount: Decimal,
    account=None,
    first: date | None = None,
    last: date | None = None,
    key: str = "",
    billing_period: date | None = None,
) -> InvoiceLine:
    return InvoiceLine(
        kind=kind,
        description=description[:255],
        amount=amount,
        service_account=account,
        period_start=first,
        period_end=last,
        key=key,
        billing_period=billing_period,
    )
