"""The portal's bills pages: invoices and credit notes, payments with their receipts, and
the statement over a chosen period; every document opens as a PDF by a signed link
(billing.links), which works without signing in and expires.

Each list is one query on the customer's own rows (the customer indexes of invoices and
ledger entries), a page at a time, with one row more than shown to know whether there
is a next page: no COUNT, and the same handful of queries for a customer with one
invoice or ten years of them. Links are signed paths on this host, made without a
query (billing.links.document_path)."""

from dataclasses import dataclass
from datetime import datetime, time
from decimal import Decimal

from django.db.models import Exists, OuterRef, Q, Sum
from django.urls import path
from django.utils import timezone

from billing.links import INVOICE, RECEIPT, STATEMENT, document_path
from billing.models import Invoice, LedgerEntry
from billing.periods import add_months
from portal.pages import customer_page, render_page

PAGE_SIZE = 20
LATEST_PAYMENTS = 5  # on the bills page; the rest on the payments page
STATEMENT_ROWS = 200  # the statement page's longest list (the PDF has the rest)
PERIODS = {3: "Last 3 months", 6: "Last 6 months", 12: "Last 12 months"}
ZERO = Decimal("0.00")


@dataclass(frozen=True)
class InvoiceRow:
    invoice: Invoice
    status: str  # in plain words
    tone: str  # the badge's colour (portal/base.html's state classes)
    amount: str  # the total; a credit note's with a minus
    left: Decimal  # what is left to pay
    link: str


@dataclass(frozen=True)
class StatementRow:
    entry: LedgerEntry
    amount: str  # "KES 1,500.00", or "-KES 1,500.00" for money in
    balance: str  # after this entry, in words


@dataclass(frozen=True)
class PaymentRow:
    entry: LedgerEntry
    received: Decimal  # positive
    reversed: bool
    link: str


@customer_page
def invoices(request):
    customer = request.visit.customer
    now = timezone.now()
    page = _page_number(request)
    found = _one_page(
        Invoice.objects.filter(customer=customer)
        .select_related("credits")
        .only(*INVOICE_FIELDS)
        .order_by("-issued_on", "-id"),
        page,
    )
    today = timezone.localdate(now)
    rows = [_invoice_row(invoice, today, now) for invoice in found.rows]
    latest = [_payment_row(e, now) for e in _payments(customer)[: LATEST_PAYMENTS + 1]]
    context = {
        "rows": rows,
        "pages": found,
        "payments": latest[:LATEST_PAYMENTS],
        "more_payments": len(latest) > LATEST_PAYMENTS,
        "periods": PERIODS,
        "tab": "invoices",
    }
    return render_page(request, "portal/invoices.html", context)


@customer_page
def payments(request):
    customer = request.visit.customer
    now = timezone.now()
    found = _one_page(_payments(customer), _page_number(request))
    context = {
        "payments": [_payment_row(e, now) for e in found.rows],
        "pages": found,
        "tab": "payments",
    }
    return render_page(request, "portal/invoices_payments.html", context)


@customer_page
def statement(request):
    """The ledger over the last 3, 6 or 12 months: the balance brought forward, each
    entry with the balance after it, and the balance now; the PDF by a signed link."""
    customer = request.visit.customer
    now = timezone.now()
    months = _months(request)
    start = timezone.make_aware(
        datetime.combine(add_months(timezone.localdate(now), -months), time.min)
    )
    newest_first = list(
        LedgerEntry.objects.filter(customer=customer, at__gte=start, at__lte=now)
        .only("id", "at", "kind", "amount", "description", "reference")
        .order_by("-at", "-id")[: STATEMENT_ROWS + 1]
    )
    shown = newest_first[:STATEMENT_ROWS][::-1]
    before = Q(at__lt=start)
    if shown:  # everything before the oldest entry shown (a cut list included)
        first = shown[0]
        before = Q(at__lt=first.at) | Q(at=first.at, id__lt=first.id)
    opening = (
        LedgerEntry.objects.filter(before, customer=customer).aggregate(s=Sum("amount"))["s"]
        or ZERO
    )
    rows, running = [], opening
    for entry in shown:
        running += entry.amount
        rows.append(StatementRow(entry, _signed(entry.amount), balance(running)))
    context = {
        "months": months,
        "period": PERIODS[months],
        "periods": PERIODS,
        "start": start,
        "opening": balance(opening),
        "rows": rows[::-1],  # newest first, as the other lists
        "closing": balance(running),
        "cut": len(newest_first) > STATEMENT_ROWS,
        "pdf": document_path(STATEMENT, customer.pk, at=now),
        "tab": "statement",
    }
    return render_page(request, "portal/invoices_statement.html", context)


# --- the lists ------------------------------------------------------------------------

INVOICE_FIELDS = (
    "id",
    "number",
    "kind",
    "status",
    "issued_on",
    "due_on",
    "total",
    "amount_paid",
    "amount_credited",
    "credits__number",
)


@dataclass(frozen=True)
class Page:
    rows: list
    number: int
    has_next: bool

    @property
    def has_previous(self) -> bool:
        return self.number > 1


def _one_page(queryset, number: int) -> Page:
    """Page `number` of `queryset` in one query: a row more than a page says whether
    there is another."""
    offset = (number - 1) * PAGE_SIZE
    rows = list(queryset[offset : offset + PAGE_SIZE + 1])
    return Page(rows[:PAGE_SIZE], number, len(rows) > PAGE_SIZE)


def _page_number(request) -> int:
    try:
        return min(max(int(request.GET.get("page", 1)), 1), 10_000)
    except (TypeError, ValueError):
        return 1


def _months(request) -> int:
    try:
        months = int(request.GET.get("months", 3))
    except (TypeError, ValueError):
        return 3
    return months if months in PERIODS else 3


def _payments(customer):
    """The customer's payments on the ledger, newest first, each marked if a reversal
    took it back (an adjustment with the payment's reference, billing.services)."""
    reversal = LedgerEntry.objects.filter(
        customer_id=OuterRef("customer_id"),
        kind=LedgerEntry.Kind.ADJUSTMENT,
        reference=OuterRef("reference"),
    ).exclude(reference="")
    return (
        LedgerEntry.objects.filter(customer=customer, kind=LedgerEntry.Kind.PAYMENT)
        .only("id", "customer_id", "at", "amount", "description", "reference")
        .annotate(was_reversed=Exists(reversal))
        .order_by("-at", "-id")
    )


def _invoice_row(invoice: Invoice, today, now) -> InvoiceRow:
    left = invoice.outstanding
    if invoice.kind == Invoice.Kind.CREDIT_NOTE:
        credited = invoice.credits.number if invoice.credits_id else ""
        status, tone = (f"Credit for {credited}" if credited else "Credit note"), "active"
    elif invoice.status == Invoice.Status.VOID:
        status, tone, left = "Cancelled", "pending", ZERO
    elif invoice.status == Invoice.Status.PAID or left <= 0:
        status, tone = "Paid", "active"
    elif invoice.due_on < today:
        status, tone = f"Overdue since {invoice.due_on:%-d %b %Y}", "suspended"
    elif left < invoice.total:
        status, tone = f"Part paid, due {invoice.due_on:%-d %b %Y}", "grace"
    else:
        status, tone = f"To pay by {invoice.due_on:%-d %b %Y}", "grace"
    link = document_path(INVOICE, invoice.pk, at=now)
    return InvoiceRow(invoice, status, tone, _signed(invoice.total), max(left, ZERO), link)


def balance(amount: Decimal) -> str:
    """A balance as the subscriber reads it: what is to pay, or what is in credit."""
    if amount > 0:
        return f"KES {amount:,.2f} to pay"
    if amount < 0:
        return f"KES {-amount:,.2f} in credit"
    return "KES 0.00"


def _signed(amount: Decimal) -> str:
    return f"-KES {-amount:,.2f}" if amount < 0 else f"KES {amount:,.2f}"


def _payment_row(entry: LedgerEntry, now) -> PaymentRow:
    return PaymentRow(
        entry, -entry.amount, entry.was_reversed, document_path(RECEIPT, entry.pk, at=now)
    )


urls = [
    path("my/invoices/", invoices, name="invoices"),
    path("my/invoices/payments/", payments, name="invoices_payments"),
    path("my/invoices/statement/", statement, name="invoices_statement"),
]
