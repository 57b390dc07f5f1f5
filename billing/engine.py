"""The billing engine: the one place that decides what a postpaid account is charged.

What a period should cost comes from billing.timeline (a pure function of the account's
timeline, add-ons, discounts and the plans' price history). This module loads those from
the database, compares them with what was already charged for each period (the account's
invoice and credit-note lines, by period and line key) and posts the difference:
an invoice when more is owed, credit notes against the period's invoices when less is
(with each invoice's VAT), never more credit on an invoice than it charged.

- `settle_account`: after any event on an account (status or plan change, add-on or
  discount change, a void): recompute its opened periods from a day on (a restored
  account is charged for the rest of the current period at once).
- `bill_accounts`: the billing run's bulk path: open the periods due by a day for many
  accounts at once (their lines computed the same way).
- `append_entry`: the timeline grows by one entry per status or plan change.

The caller holds the customer and service account locks (billing.ledger's order).
"""

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db.models import Max
from django.utils import timezone

from billing import documents, timeline
from billing.documents import Draft
from billing.ledger import ZERO
from billing.models import (
    BillingSettings,
    ChargedPeriod,
    Invoice,
    InvoiceLine,
    PlanPrice,
    TimelineEntry,
    Waiver,
)
from billing.periods import last_day
from subscribers.models import AddOn, Discount, Plan

log = logging.getLogger(__name__)
# At most this many periods are opened for one account in one go (catching up a long
# gap: a year of months, or of days for a daily plan).
MAX_CATCH_UP = 400


def fixed_day(cfg: BillingSettings) -> int | None:
    return cfg.fixed_day if cfg.anchor == BillingSettings.Anchor.FIXED_DAY else None


def is_billable(status: str, mode: str, cfg: BillingSettings) -> bool:
    """Are days in this state charged? Active postpaid days are; suspended ones only
    under a "keep charging" policy."""
    if mode != "postpaid":
        return False
    if status == "active":
        return True
    return status == "suspended" and cfg.when_suspended == BillingSettings.Suspended.CHARGE


# --- the timeline in the database ------------------------------------------------------


def _local_day(moment: datetime) -> date:
    return timezone.localtime(moment).date()


def _entry(account_id, at: datetime, status: str, plan, reason: str, cfg) -> TimelineEntry:
    return TimelineEntry(
        service_account_id=account_id,
        starts_on=_local_day(at),
        at=at,
        status=status,
        plan=plan,
        mode=plan.billing,
        cycle=plan.cycle,
        billable=is_billable(status, plan.billing, cfg),
        reason=reason[:255],
    )


def _implied_steps(account) -> list[tuple[str, datetime, str]]:
    """The timeline of an account made before timelines were kept, or in bulk (imports,
    router imports), as (status, at, reason): its activation, then its present
    suspension or termination."""
    steps = []
    if account.activated_at:
        steps.append(("active", account.activated_at, "activated"))
    if account.status in ("suspended", "terminated"):
        stamp = account.suspended_at if account.status == "suspended" else account.terminated_at
        if stamp:
            steps.append((account.status, stamp, account.status))
    if not steps:
        steps.append((account.status, account.created_at, "created"))
    return steps


def _implied_entries(account, cfg) -> list[TimelineEntry]:
    return [
        _entry(account.pk, at, status, account.plan, why, cfg)
        for status, at, why in _implied_steps(account)
    ]


def ensure_timeline(account, *, plan=None, cfg=None) -> None:
    """An account with no timeline yet gets the one its dates imply (on `plan`, its plan
    before a change being recorded, else its plan)."""
    if TimelineEntry.objects.filter(service_account_id=account.pk).exists():
        return
    before = type(account).objects.select_related("plan").get(pk=account.pk)
    if plan is not None:
        before.plan = plan
    TimelineEntry.objects.bulk_create(_implied_entries(before, cfg or BillingSettings.load()))


def append_entries(accounts, *, at: datetime, status: str, reason: str, cfg=None) -> None:
    """`append_entry` for many accounts (ServiceAccount rows with their plan) at once, all
    moving to `status` on their present plans: a bulk suspension."""
    cfg = cfg or BillingSettings.load()
    ids = [a.pk for a in accounts]
    have = set(
        TimelineEntry.objects.filter(service_account_id__in=ids).values_list(
            "service_account_id", flat=True
        )
    )
    rows = [e for a in accounts if a.pk not in have for e in _implied_entries(a, cfg)]
    rows += [_entry(a.pk, at, status, a.plan, reason, cfg) for a in accounts]
    TimelineEntry.objects.bulk_create(rows, batch_size=2000)


def append_entry(account, *, at: datetime, status: str, plan, reason: str, cfg=None):
    """Record the account's state from the day of `at` on."""
    cfg = cfg or BillingSettings.load()
    ensure_timeline(account, cfg=cfg)
    entry = _entry(account.pk, at, status, plan, reason, cfg)
    entry.save(force_insert=True)
    return entry


@dataclass
class Book:
    """What the engine reads about some accounts, loaded in a few queries."""

    segments: dict[int, list[timeline.Segment]]
    addons: dict[int, list[timeline.AddOnTerm]]
    discounts: dict[int, list[timeline.DiscountTerm]]
    prices: "PriceBook"


class PriceBook:
    """Plan prices by day: the PlanPrice row in force, else (before any row) the plan's
    price."""

    def __init__(self, plans: dict[int, Decimal]):
        self.current = plans
        self.history: dict[int, list[tuple[date, Decimal]]] = defaultdict(list)
        for plan_id, day, price in (
            PlanPrice.objects.filter(plan_id__in=list(plans))
            .order_by("effective_on")
            .values_list("plan_id", "effective_on", "price")
        ):
            self.history[plan_id].append((day, price))

    def price_of(self, plan_id: int, day: date) -> Decimal:
        found = None
        for effective_on, price in self.history.get(plan_id, ()):
            if effective_on > day:
                break
            found = price
        if found is None:
            history = self.history.get(plan_id)
            found = history[0][1] if history else self.current[plan_id]
        return found


def load(accounts, cfg: BillingSettings, *, among=None) -> Book:
    """The timelines (with waivers cut out), add-ons, discounts and prices of
    `accounts` (ServiceAccount rows with their plan, or objects with the same fields).
    `among`, a queryset of account ids holding at least these, is how the other tables
    are filtered instead of a list of every id (a report over 100,000 accounts)."""
    ids = [a.pk for a in accounts]
    among = ids if among is None else among
    entries: dict[int, list[timeline.Entry]] = defaultdict(list)
    plan_names = dict(Plan.objects.values_list("id", "name"))
    for row in (
        TimelineEntry.objects.filter(service_account_id__in=among)
        .order_by("service_account_id", "starts_on", "id")
        .values_list(
            "service_account_id", "starts_on", "status", "plan_id", "mode", "cycle", "billable"
        )
    ):
        entries[row[0]].append(timeline.Entry(row[1], row[2], row[3], plan_names[row[3]], *row[4:]))
    for account in accounts:
        if account.pk not in entries:
            plan = account.plan
            entries[account.pk] = [
                timeline.Entry(
                    _local_day(at),
                    status,
                    plan.pk,
                    plan.name,
                    plan.billing,
                    plan.cycle,
                    is_billable(status, plan.billing, cfg),
                )
                for status, at, _ in _implied_steps(account)
            ]
    waived = defaultdict(list)
    for account_id, start, end in Waiver.objects.filter(service_account_id__in=among).values_list(
        "service_account_id", "starts_on", "ends_on"
    ):
        waived[account_id].append((start, end))
    addons = defaultdict(list)
    for a in AddOn.objects.filter(service_account_id__in=among):
        addons[a.service_account_id].append(
            timeline.AddOnTerm(a.pk, a.name, a.price, a.starts_on, a.ends_on)
        )
    discounts = defaultdict(list)
    for d in Discount.objects.filter(service_account_id__in=among):
        discounts[d.service_account_id].append(
            timeline.DiscountTerm(d.pk, d.reason, d.kind, d.value, d.starts_on, d.ends_on)
        )
    segments = {i: timeline.segments(entries[i], waived.get(i, ())) for i in ids}
    prices = PriceBook(dict(Plan.objects.values_list("id", "price")))
    return Book(segments, addons, discounts, prices)


def expected_lines(book: Book, account_id: int, period: timeline.Period):
    return timeline.period_lines(
        book.segments[account_id],
        period,
        book.prices.price_of,
        book.addons.get(account_id, ()),
        book.discounts.get(account_id, ()),
    )


def _invoice_lines(lines, account, period: timeline.Period) -> list[InvoiceLine]:
    return [
        documents.line(
            kind=ln.kind,
            description=ln.name,
            amount=ln.amount,
            account=account,
            first=ln.first or period.start,
            last=ln.last or last_day(period.end),
            key=ln.key,
            billing_period=period.start,
        )
        for ln in lines
    ]


# --- events: recompute and post the difference -----------------------------------------


@dataclass
class _Charged:
    """What was charged for one period: per key (amount, first name), and per invoice
    of it how much is left to credit (its lines less credit notes against it)."""

    by_key: dict
    room: dict  # invoice id -> Decimal
    invoices: dict  # invoice id -> Invoice


def _charged(account_ids, starts) -> dict[tuple[int, date], _Charged]:
    """What was charged for these accounts' periods starting on `starts`, by (account,
    period start)."""
    found: dict[tuple[int, date], _Charged] = {}
    rows = (
        InvoiceLine.objects.filter(
            service_account_id__in=list(account_ids), billing_period__in=list(starts)
        )
        .select_related("invoice")
        .order_by("id")
    )
    for ln in rows:
        c = found.setdefault(
            (ln.service_account_id, ln.billing_period),
            _Charged({}, defaultdict(lambda: ZERO), {}),
        )
        amount, name = c.by_key.get(ln.key, (ZERO, ln.description))
        c.by_key[ln.key] = (amount + ln.amount, name)
        target = ln.invoice if ln.invoice.kind == Invoice.Kind.INVOICE else None
        target_id = target.pk if target else ln.invoice.credits_id
        c.room[target_id] += ln.amount
        if target is not None:
            c.invoices[target.pk] = target
    return found


def settle_account(
    account, as_of: datetime, *, actor, since: date, reason: str, first: Invoice = None
) -> list[Invoice]:
    """`settle_accounts` for one account."""
    return settle_accounts([account], as_of, actor=actor, since=since, reason=reason, first=first)


def settle_accounts(
    accounts, as_of: datetime, *, actor, since: date, reason: str, first: Invoice = None
) -> list[Invoice]:
    """Make what these accounts were charged match their timelines: the periods opened
    (by billing runs) that end on or after `since` are recomputed and the difference
    posted, for all of them in a few statements. Periods not opened yet are left to the
    run, which bills them from the timeline as it then is. Credit notes go to `first`
    before a period's other invoices (newest first). Returns the documents posted."""
    cfg = BillingSettings.load()
    day = _local_day(as_of)
    opened: dict[int, dict[date, ChargedPeriod]] = defaultdict(dict)
    for cp in ChargedPeriod.objects.filter(
        service_account_id__in=[a.pk for a in accounts], period_end__gte=since
    ):
        opened[cp.service_account_id][cp.period_start] = cp
    if not opened:
        return []  # nothing billed from `since` on (prepaid, or not billed yet)
    model = type(accounts[0])
    accounts = list(model.objects.select_related("plan").filter(pk__in=list(opened)))
    book = load(accounts, cfg)
    work = []  # (account, period, what it should cost)
    for account in accounts:
        mine = opened.get(account.pk, {})
        if not mine:
            continue
        grid = timeline.periods_until(book.segments[account.pk], day, fixed_day(cfg))
        for period in grid:
            if period.start in mine:
                work.append((account, period, expected_lines(book, account.pk, period)))
                cp = mine[period.start]
                if cp.period_end != last_day(period.end):
                    ChargedPeriod.objects.filter(pk=cp.pk).update(period_end=last_day(period.end))
        # Periods opened before that the timeline no longer has (a regime cut short
        # before they began): they should cost nothing.
        grid_starts = {p.start for p in grid}
        work += [
            (account, timeline.Period(start, cp.period_end + timedelta(days=1), 1, ""), {})
            for start, cp in mine.items()
            if start not in grid_starts
        ]
    charged = _charged({a.pk for a, _, _ in work}, {p.start for _, p, _ in work})
    drafts: list[Draft] = []
    for account, period, want in work:
        have = charged.get((account.pk, period.start))
        diffs = timeline.difference(want, have.by_key if have else {})
        drafts += _post(account, period, diffs, have, cfg, day, reason, first)
    return documents.save(drafts, cfg, actor=actor, at=as_of)


def _opening(account, period, want, cfg, day) -> Draft | None:
    """The invoice that opens a period (None when it costs nothing)."""
    lines = list(want.values())
    if sum((ln.amount for ln in lines), ZERO) <= 0:
        return None
    return Draft(
        customer_id=account.customer_id,
        account=account,
        lines=_invoice_lines(lines, account, period),
        issued_on=day,
        due_on=day + timedelta(days=cfg.due_days),
        period=(period.start, period.end),
    )


def _post(account, period, diffs, have: "_Charged | None", cfg, day, reason, first):
    """Drafts that post `diffs` for one period: an invoice if more is owed, else credit
    notes on the period's invoices, each no more than that invoice has left."""
    net = sum((d.amount for d in diffs), ZERO)
    if net == 0:
        return []
    lines = _invoice_lines(diffs, account, period)
    if net > 0:
        return [
            Draft(
                customer_id=account.customer_id,
                account=account,
                lines=lines,
                issued_on=day,
                due_on=day + timedelta(days=cfg.due_days),
                reason=reason,
                period=(period.start, period.end),
            )
        ]
    if have is None or not have.invoices:
        log.error("account %s: a credit for %s with no invoice to credit", account.pk, period)
        return []
    order = sorted(have.invoices, key=lambda i: (first is None or i != first.pk, -i))
    room = [(have.invoices[i], have.room[i]) for i in order if have.room[i] > 0]
    return [
        Draft(
            customer_id=account.customer_id,
            account=account,
            lines=part,
            issued_on=day,
            due_on=day,
            credits=invoice,
            reason=reason,
            period=(period.start, period.end),
        )
        for invoice, part in _split_credit(lines, room)
    ]


def _split_credit(lines: list[InvoiceLine], room: list[tuple[Invoice, Decimal]]):
    """Share credit lines out over invoices, none beyond its room; charge lines (the new
    plan of a downgrade) stay with the first."""
    charges = [ln for ln in lines if ln.amount > 0]
    credits = [ln for ln in lines if ln.amount < 0]
    out = []
    for n, (invoice, space) in enumerate(room):
        if not credits:
            break
        part = charges if n == 0 else []
        space += sum((ln.amount for ln in part), ZERO)
        last = n == len(room) - 1
        while credits and (space > 0 or last):
            ln = credits[0]
            if -ln.amount <= space or last:
                part.append(credits.pop(0))
                space += ln.amount
            else:
                piece = InvoiceLine(**{f.attname: getattr(ln, f.attname) for f in ln._meta.fields})
                piece.amount = -space
                ln.amount += space
                part.append(piece)
                space = ZERO
        out.append((invoice, part))
    return out


# --- the billing run's bulk path ---------------------------------------------------------


def bill_accounts(accounts, day: date, *, as_of: datetime, run=None, actor) -> list[Invoice]:
    """Open every period due by `day` of these accounts (locked by the caller), in one
    transaction of the caller's: invoices for those that cost something."""
    cfg = BillingSettings.load()
    ids = [a.pk for a in accounts]
    last_opened = dict(
        ChargedPeriod.objects.filter(service_account_id__in=ids)
        .values_list("service_account_id")
        .annotate(m=Max("period_start"))
        .order_by()
    )
    book = load(accounts, cfg)
    fixed = fixed_day(cfg)
    drafts, opened = [], []
    for account in accounts:
        after = last_opened.get(account.pk)
        grid = timeline.periods_until(book.segments[account.pk], day, fixed)
        new = [p for p in grid if after is None or p.start > after][:MAX_CATCH_UP]
        for period in new:
            draft = _opening(account, period, expected_lines(book, account.pk, period), cfg, day)
            if draft is not None:
                drafts.append(draft)
            opened.append((account, period, draft))
    docs = iter(documents.save(drafts, cfg, actor=actor, at=as_of, run=run))
    by_draft = {id(d): next(docs) for d in drafts}
    ChargedPeriod.objects.bulk_create(
        [
            ChargedPeriod(
                service_account=account,
                period_start=period.start,
                period_end=last_day(period.end),
                invoice=by_draft[id(draft)] if draft else None,
                created_at=as_of,
            )
            for account, period, draft in opened
        ],
        batch_size=5000,
    )
    return list(by_draft.values())
