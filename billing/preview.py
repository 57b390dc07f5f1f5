"""What a change would cost, before anyone makes it.

The change itself is run: the caller hands in a function that makes it (a plan change,
say, through subscribers.services), `preview` runs it inside a transaction, reads the
invoices, credit notes and ledger entries it made and what the account looks like
after, then rolls everything back. So a preview is never a second copy of the money
rules (the engine and billing.prepaid stay their one home) and it equals, to the cent,
what the same change at the same moment puts on the ledger.

Nothing escapes the rollback: rows (documents, ledger entries, timeline, router jobs,
messages, audit entries) go with it, and Django drops the `transaction.on_commit`
callbacks registered inside it (router job hand-over, SMS sending), so no worker is
ever told about them. Locks: the customer and account rows are locked before anything
is read, so no payment or billing run slips its rows into what is measured; when
`preview` is its own transaction they end with it, and inside a caller's transaction
it is a savepoint, whose rollback releases the row locks taken in it (PostgreSQL).
The change may number a document, which holds the ISP's numbering row for the
preview's few milliseconds, as any invoice does; the numbers go back with the rollback.

Also here, for the same pages: `paid_until` (when the paid period ends: where "at
renewal" puts a change), `next_bill` and `is_upgrade`.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from billing import engine, periods, prepaid, timeline
from billing.ledger import ZERO, customer_balance, dues, lock_customer
from billing.models import BillingSettings, ChargedPeriod, Invoice, LedgerEntry
from subscribers.models import ServiceAccount


@dataclass(frozen=True)
class Document:
    """An invoice or credit note the change would issue (totals as stored: a credit
    note's are negative)."""

    kind: str
    total: Decimal
    lines: list[tuple[str, Decimal]]

    @property
    def is_credit_note(self) -> bool:
        return self.kind == Invoice.Kind.CREDIT_NOTE


@dataclass(frozen=True)
class NextBill:
    on: datetime  # a prepaid renewal's moment, or the start of the next postpaid period
    amount: Decimal  # with VAT, as the invoice will total


@dataclass(frozen=True)
class Preview:
    at: datetime
    documents: list[Document]
    charged: Decimal  # the charge lines, in all
    credited: Decimal  # the credit lines, in all (a positive amount)
    vat: Decimal  # what VAT adds where the ISP's prices exclude it (else 0)
    net: Decimal  # what the ledger moves: the sum of the entries the change adds
    balance_after: Decimal
    owed_after: Decimal  # what open invoices still want after it (billing.ledger.dues)
    expires_before: datetime | None
    expires_after: datetime | None
    next_bill: NextBill | None


class _Undo(Exception):
    """Not an error: how the result leaves the rolled-back transaction."""

    def __init__(self, preview: Preview):
        self.preview = preview


def preview(account, change: Callable[[], object], *, at: datetime) -> Preview:
    """What `change()` (a change to `account` acting at `at`) would do, without doing
    it. What `change()` raises (a refused change) is raised here."""
    try:
        with transaction.atomic():
            raise _Undo(measure(account, change, at=at))
    except _Undo as undone:
        return undone.preview


def measure(account, change: Callable[[], object], *, at: datetime) -> Preview:
    """Run `change()` in the caller's transaction and report what it did: `preview`
    rolls it back; a caller that keeps it compares it with the preview it showed."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("measure() needs a transaction: the rows it reads could move")
    customer = account.customer
    lock_customer(customer.pk)
    before = ServiceAccount.objects.select_for_update(of=("self",), no_key=True).get(pk=account.pk)
    last_doc = Invoice.objects.filter(customer=customer).aggregate(m=Max("id"))["m"] or 0
    last_entry = LedgerEntry.objects.filter(customer=customer).aggregate(m=Max("id"))["m"] or 0
    change()
    docs = list(
        Invoice.objects.filter(customer=customer, pk__gt=last_doc)
        .prefetch_related("lines")
        .order_by("id")
    )
    net = sum(
        LedgerEntry.objects.filter(customer=customer, pk__gt=last_entry).values_list(
            "amount", flat=True
        ),
        ZERO,
    )
    after = ServiceAccount.objects.select_related("plan", "customer").get(pk=account.pk)
    documents = [
        Document(d.kind, d.total, [(ln.description, ln.amount) for ln in d.lines.all()])
        for d in docs
    ]
    # By line, not by document: the engine puts the credit for the old plan's days and
    # the charge for the new plan's on one invoice when more is owed.
    amounts = [amount for d in documents for _, amount in d.lines]
    charged = sum((a for a in amounts if a > 0), ZERO)
    credited = -sum((a for a in amounts if a < 0), ZERO)
    return Preview(
        at=at,
        documents=documents,
        charged=charged,
        credited=credited,
        vat=net - charged + credited,
        net=net,
        balance_after=customer_balance(customer),
        owed_after=dues(customer, timezone.localdate(at)).owed,
        expires_before=before.expires_at,
        expires_after=after.expires_at,
        next_bill=next_bill(after, at),
    )


# --- the paid period ----------------------------------------------------------------------


def _current_period(account, at: datetime, cfg: BillingSettings):
    """The postpaid period containing the day of `at` (None if there is none) and what
    the engine read about the account."""
    book = engine.load([account], cfg)
    segs = book.segments[account.pk]
    found = timeline.periods_until(segs, timezone.localdate(at), engine.fixed_day(cfg))
    return (found[-1] if found else None), book


def _midnight(day) -> datetime:
    return timezone.make_aware(datetime.combine(day, datetime.min.time()))


def paid_until(account, at: datetime) -> datetime | None:
    """When the period the account has (or will be billed) for ends: a prepaid term's
    end, the start of the next postpaid period (local midnight). None when nothing is
    paid for at `at` (a lapsed prepaid term, an account out of service)."""
    if account.status not in ("active", "suspended"):
        return None
    if account.plan.billing == "prepaid":
        term = prepaid.current_term(account, at)
        return term.ends_at if term is not None else None
    period, _ = _current_period(account, at, BillingSettings.load())
    return None if period is None else _midnight(period.end)


def next_bill(account, at: datetime) -> NextBill | None:
    """The account's next charge from `at` on as things stand: a prepaid term of its
    plan at its expiry, or its next postpaid period not billed yet (the one starting
    on the day of `at`, if it is not opened yet), as the engine would bill it."""
    if account.status not in ("active", "suspended"):
        return None
    cfg = BillingSettings.load()
    if account.plan.billing == "prepaid":
        on = max(account.expires_at or at, at)
        return NextBill(on, prepaid.term_cost(account.plan, timezone.localdate(on), cfg))
    period, book = _current_period(account, at, cfg)
    if period is None:
        return None
    opened = ChargedPeriod.objects.filter(
        service_account_id=account.pk, period_start=period.start
    ).exists()
    if opened or period.start != timezone.localdate(at):
        # The period under way is billed: the next one.
        ahead = timeline.periods_until(book.segments[account.pk], period.end, engine.fixed_day(cfg))
        if not ahead or ahead[-1].start != period.end:
            return None
        period = ahead[-1]
    lines = engine.expected_lines(book, account.pk, period).values()
    amount = sum((ln.amount for ln in lines), ZERO)
    total = periods.split_vat(amount, cfg.vat_rate, cfg.vat_inclusive)[2]
    return NextBill(_midnight(period.start), total)


def is_upgrade(old_plan, new_plan, day, book: engine.PriceBook | None = None) -> bool:
    """Does the move cost more per day? Prices as the engine reads them on `day`
    (plan price history), per day of each plan's cycle. `book`: the prices of many
    plans, read once."""
    book = book or engine.PriceBook({old_plan.pk: old_plan.price, new_plan.pk: new_plan.price})

    def per_day(plan) -> Decimal:
        length = _CYCLE_DAYS.get(plan.cycle, Decimal(1))
        return book.price_of(plan.pk, day) / length

    return per_day(new_plan) > per_day(old_plan)


_CYCLE_DAYS = {
    "hourly": Decimal(1) / 24,
    "daily": Decimal(1),
    "weekly": Decimal(7),
    "monthly": Decimal(365) / 12,
}
