"""Prepaid service: terms bought with money, the expiry they give, and what plan changes
and reversed payments do to them. The rules an ISP will ask about (README, "Prepaid"):

- A prepaid account in service always has an expiry. Activated with none, or moved to
  a prepaid plan, it expires at that moment (nothing is paid yet: the grace period,
  then suspension); an imported row without one expires at the import.
- Money buys terms: the customer's unallocated credit buys one period at a time for the
  soonest-expiring prepaid account whose term it covers (the price, plus VAT where the
  ISP's prices exclude it), again and again, so one payment for two lines renews each
  in turn. A term starts at the later of now and the expiry; a term that continues a
  chain keeps the chain's day of the month (31 Jan -> 28 Feb -> 31 Mar), one that
  starts after a lapse starts a new chain. Each term is an invoice, paid at once from
  the credit. What is left is held as credit, or (ISP setting) buys the
  soonest-expiring account a part term.
- A reversed payment takes back the terms it bought, newest first: each term's invoice
  is credited in full and the expiry moves back by the term's length.
- A change to a plan of the same cycle: an upgrade is charged (new price - old price) x
  the share of the current term left, as an invoice (or refused until renewal, per ISP
  setting); a downgrade credits the same on the term's invoice. Any other change (cycle,
  or to postpaid) credits the unused share of the current term and ends it now.
"""

from collections import defaultdict
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

from django.utils import timezone

from billing import documents, periods
from billing.documents import Draft
from billing.engine import PriceBook
from billing.ledger import ZERO, BillingError, allocate, dues_many, unallocated_credit
from billing.models import BillingSettings, Invoice, PrepaidTerm
from subscribers.models import ServiceAccount

SUB_DAY = ("hourly", "daily")


def one_period_after(cycle: str, moment: datetime, anchor_day: int | None = None) -> datetime:
    """The end of a term of `cycle` starting at `moment`; monthly terms keep
    `anchor_day` where the month has it."""
    if cycle == "hourly":
        return moment + timedelta(hours=1)
    if cycle == "daily":
        return moment + timedelta(days=1)
    if cycle == "weekly":
        return moment + timedelta(days=7)
    local = timezone.localtime(moment)
    moved = periods.add_months(local.date(), 1, anchor_day or local.day)
    return local.replace(year=moved.year, month=moved.month, day=moved.day)


def grace(cycle: str, cfg: BillingSettings) -> timedelta:
    """How long after expiry service goes on: hours for hourly and daily plans, days
    for the others."""
    if cycle in SUB_DAY:
        return timedelta(hours=cfg.grace_hours)
    return timedelta(days=cfg.grace_days)


def _price(plan, day) -> Decimal:
    return PriceBook({plan.pk: plan.price}).price_of(plan.pk, day)


def term_cost(plan, day, cfg: BillingSettings, book: PriceBook | None = None) -> Decimal:
    """What a term of `plan` bought on `day` costs the customer: the total of its
    invoice, the plan's price on that day with VAT added where the ISP's prices
    exclude it. What credit must cover to buy one, and what the pay page asks.
    `book`: the prices of many plans, read once."""
    price = book.price_of(plan.pk, day) if book is not None else _price(plan, day)
    return _with_vat(price, cfg)


def to_pay_many(customer_ids, at: datetime) -> dict[int, Decimal]:
    """What each customer must pay at `at` to be settled: every open invoice, and a
    term of each prepaid account in service whose paid time is over, less the credit
    held. What the pay page asks for and every suspension message quotes."""
    ids = list(customer_ids)
    day = timezone.localdate(at)
    owing = dues_many(ids, day)
    lapsed = list(
        ServiceAccount.objects.filter(
            customer_id__in=ids,
            plan__billing="prepaid",
            status__in=["active", "suspended"],
            expires_at__lte=at,
        ).select_related("plan")
    )
    renewals: dict[int, Decimal] = defaultdict(lambda: ZERO)
    if lapsed:
        cfg = BillingSettings.load()
        book = PriceBook({a.plan_id: a.plan.price for a in lapsed})
        for account in lapsed:
            renewals[account.customer_id] += term_cost(account.plan, day, cfg, book)
    return {cid: d.owed + max(ZERO, renewals[cid] - d.spare) for cid, d in owing.items()}


def top_ups(customer_id: int, choices, at: datetime) -> dict[int, Decimal]:
    """For each n in `choices`: what the customer pays at `at` for n more terms of every
    prepaid account in service, after every open invoice, less the credit held. Credit
    buys terms one at a time for the soonest-expiring account (buy_terms), so a payment
    of that much buys exactly n terms of each: what the portal asks for a top-up of
    several periods."""
    day = timezone.localdate(at)
    owing = dues_many([customer_id], day)[customer_id]
    accounts = list(
        ServiceAccount.objects.filter(
            customer_id=customer_id, plan__billing="prepaid", status__in=["active", "suspended"]
        ).select_related("plan")
    )
    cfg = BillingSettings.load()
    book = PriceBook({a.plan_id: a.plan.price for a in accounts})
    per_term = sum((term_cost(a.plan, day, cfg, book) for a in accounts), ZERO)
    return {n: owing.owed + max(ZERO, per_term * n - owing.spare) for n in choices}


def _with_vat(price: Decimal, cfg: BillingSettings) -> Decimal:
    return periods.split_vat(price, cfg.vat_rate, cfg.vat_inclusive)[2]


def _before_vat(gross: Decimal, cfg: BillingSettings) -> Decimal:
    """The line amount whose invoice total is at most `gross`."""
    if cfg.vat_inclusive:
        return gross
    return (gross * 100 / (100 + cfg.vat_rate)).quantize(periods.CENT, ROUND_DOWN)


def _last_term(account):
    return (
        PrepaidTerm.objects.filter(service_account=account, cancelled_at__isnull=True)
        .order_by("-ends_at", "-id")
        .first()
    )


def current_term(account, at: datetime):
    return (
        PrepaidTerm.objects.filter(
            service_account=account, cancelled_at__isnull=True, starts_at__lte=at, ends_at__gt=at
        )
        .select_related("invoice")
        .order_by("-starts_at")
        .first()
    )


def _term_invoice(account, plan, amount, start, end, day, cfg, *, actor, at, note=""):
    local_start, local_end = timezone.localtime(start), timezone.localtime(end)
    text = f"{plan.name}{note}, {local_start:%d %b %Y %H:%M} to {local_end:%d %b %Y %H:%M}"
    draft = Draft(
        customer_id=account.customer_id,
        account=account,
        lines=[
            documents.line(
                kind="plan",
                description=text,
                amount=amount,
                account=account,
                first=local_start.date(),
                last=local_end.date(),
                key="prepaid",
            )
        ],
        issued_on=day,
        due_on=day,
    )
    return documents.save([draft], cfg, actor=actor, at=at)[0]


def buy_terms(customer, at: datetime, *, actor, paid_by=None) -> int:
    """Spend the customer's credit on prepaid terms (the rule in the module docstring).
    The caller holds the customer lock. Returns the number of terms bought."""
    cfg = BillingSettings.load()
    day = timezone.localdate(at)
    accounts = list(
        # OF self: the plan row is read, not locked (every payment of a customer on
        # the same plan would otherwise wait for the others).
        ServiceAccount.objects.select_for_update(of=("self",), no_key=True)
        .select_related("plan")
        .filter(customer=customer, plan__billing="prepaid", status__in=["active", "suspended"])
        .order_by("id")
    )
    prices = {a.pk: _price(a.plan, day) for a in accounts}
    costs = {pk: _with_vat(price, cfg) for pk, price in prices.items()}
    credit = unallocated_credit(customer)
    bought = 0
    while True:
        affordable = [a for a in accounts if 0 < costs[a.pk] <= credit]
        if not affordable:
            break
        account = min(affordable, key=lambda a: (a.expires_at or at, a.pk))
        _buy(account, prices[account.pk], at, day, cfg, actor=actor, paid_by=paid_by)
        credit -= costs[account.pk]
        bought += 1
    partial = [a for a in accounts if credit > 0 and costs[a.pk] > credit]
    if cfg.prepaid_partial == BillingSettings.Partial.PRORATE and partial:
        account = min(partial, key=lambda a: (a.expires_at or at, a.pk))
        part = _before_vat(credit, cfg)
        _buy(account, prices[account.pk], at, day, cfg, actor=actor, paid_by=paid_by, part=part)
    if bought or partial:
        allocate(customer)
    return bought


def _buy(account, price, at, day, cfg, *, actor, paid_by, part=None) -> PrepaidTerm:
    start = max(at, account.expires_at or at)
    last = _last_term(account)
    chained = last is not None and account.expires_at == last.ends_at and start == last.ends_at
    anchor = last.anchor_day if chained else timezone.localtime(start).day
    end = one_period_after(account.plan.cycle, start, anchor)
    amount = price
    if part is not None:
        end = start + (end - start) * float(part / price)
        amount = part
    invoice = _term_invoice(
        account,
        account.plan,
        amount,
        start,
        end,
        day,
        cfg,
        actor=actor,
        at=at,
        note="" if part is None else " (part term)",
    )
    account.expires_at = end
    type(account).objects.filter(pk=account.pk).update(expires_at=end)
    return PrepaidTerm.objects.create(
        service_account=account,
        plan=account.plan,
        price=amount,
        starts_at=start,
        ends_at=end,
        anchor_day=anchor,
        invoice=invoice,
        bought_by=paid_by,
        created_at=at,
    )


def _credit_term(term: PrepaidTerm, amount: Decimal, at, cfg, *, actor, reason: str):
    """A credit note of `amount` on a term's invoice."""
    if amount <= 0 or term.invoice is None:
        return None
    draft = Draft(
        customer_id=term.service_account.customer_id,
        account=term.service_account,
        lines=[
            documents.line(
                kind="credit",
                description=f"Credit: {reason}",
                amount=-amount,
                account=term.service_account,
                key="prepaid",
            )
        ],
        issued_on=timezone.localdate(at),
        due_on=timezone.localdate(at),
        credits=term.invoice,
        reason=reason,
    )
    return documents.save([draft], cfg, actor=actor, at=at)[0]


def take_back(payment_entry, at: datetime, *, actor) -> int:
    """A payment was reversed: cancel the terms it bought (newest first), crediting each
    term's invoice and moving the expiry back. Returns the terms taken back."""
    cfg = BillingSettings.load()
    terms = list(
        PrepaidTerm.objects.select_related("service_account", "invoice")
        .filter(bought_by=payment_entry, cancelled_at__isnull=True)
        .order_by("-starts_at", "-id")
    )
    for term in terms:
        cancel_term(
            term, at, cfg, actor=actor, reason=f"term taken back ({payment_entry.reference})"
        )
    return len(terms)


def cancel_term(term: PrepaidTerm, at, cfg, *, actor, reason: str) -> None:
    """Give a term's time back: the expiry (and later terms) move back by its length,
    and its invoice is credited for what it still has."""
    length = term.ends_at - term.starts_at
    account = (
        type(term.service_account)
        .objects.select_for_update(no_key=True)
        .get(pk=term.service_account_id)
    )
    for later in PrepaidTerm.objects.filter(
        service_account=account, cancelled_at__isnull=True, starts_at__gte=term.ends_at
    ):
        PrepaidTerm.objects.filter(pk=later.pk).update(
            starts_at=later.starts_at - length, ends_at=later.ends_at - length
        )
    if account.expires_at is not None:
        type(account).objects.filter(pk=account.pk).update(expires_at=account.expires_at - length)
    PrepaidTerm.objects.filter(pk=term.pk).update(cancelled_at=at)
    if term.invoice is not None:
        left = term.invoice.total - _credited(term.invoice)
        _credit_term(term, _net(left, term.invoice), at, cfg, actor=actor, reason=reason)


def _credited(invoice: Invoice) -> Decimal:
    return -sum((n.total for n in invoice.credit_notes.all()), ZERO)


def _net(total: Decimal, invoice: Invoice) -> Decimal:
    """The line amount whose document total is `total` (lines are VAT-exclusive when
    the invoice is)."""
    if invoice.vat_inclusive:
        return total
    return (total * 100 / (100 + invoice.vat_rate)).quantize(periods.CENT, ROUND_HALF_UP)


def on_plan_change(account, old_plan, new_plan, at: datetime, *, actor) -> None:
    """Prepaid side of a plan change (the rules in the module docstring). The caller
    holds the customer and account locks and has appended the timeline entry."""
    cfg = BillingSettings.load()
    day = timezone.localdate(at)
    term = current_term(account, at) if old_plan.billing == "prepaid" else None
    share = Decimal(0)
    if term is not None:
        share = Decimal((term.ends_at - at) / (term.ends_at - term.starts_at))
    same_cycle = (
        old_plan.billing == new_plan.billing == "prepaid" and old_plan.cycle == new_plan.cycle
    )
    if same_cycle and term is not None:
        new_price = _price(new_plan, day)
        diff = ((new_price - term.price) * share).quantize(periods.CENT, ROUND_HALF_UP)
        if diff > 0:
            # "At renewal" refuses a change in the middle of a term, not one made the
            # moment a term begins (a scheduled change applied at its renewal).
            if cfg.prepaid_upgrade == BillingSettings.Upgrade.RENEWAL and at > term.starts_at:
                raise BillingError(
                    f"upgrades take effect at renewal: the paid period ends "
                    f"{timezone.localtime(term.ends_at):%d %b %Y %H:%M}"
                )
            _term_invoice(
                account,
                new_plan,
                diff,
                at,
                term.ends_at,
                day,
                cfg,
                actor=actor,
                at=at,
                note=f" (upgrade from {old_plan.name})",
            )
        elif diff < 0:
            _credit_term(term, -diff, at, cfg, actor=actor, reason=f"downgrade to {new_plan.name}")
        PrepaidTerm.objects.filter(pk=term.pk).update(plan=new_plan, price=new_price)
    elif same_cycle:
        pass  # nothing paid now: the next term is bought at the new price
    else:
        if term is not None:
            unused = (term.price * share).quantize(periods.CENT, ROUND_HALF_UP)
            _credit_term(term, unused, at, cfg, actor=actor, reason=f"unused {old_plan.name}")
            PrepaidTerm.objects.filter(pk=term.pk).update(ends_at=at)
        # Terms bought ahead are given back whole.
        for later in PrepaidTerm.objects.select_related("service_account", "invoice").filter(
            service_account=account, cancelled_at__isnull=True, starts_at__gt=at
        ):
            left = later.invoice.total - _credited(later.invoice) if later.invoice else ZERO
            _credit_term(later, _net(left, later.invoice), at, cfg, actor=actor, reason="unused")
            PrepaidTerm.objects.filter(pk=later.pk).update(cancelled_at=at)
        if old_plan.billing == "prepaid" or new_plan.billing == "prepaid":
            expiry = at if new_plan.billing == "prepaid" else None
            type(account).objects.filter(pk=account.pk).update(expires_at=expiry)
            account.expires_at = expiry
    allocate(account.customer)
    if new_plan.billing == "prepaid" and account.status in ("active", "suspended"):
        buy_terms(account.customer, at, actor=actor)


def ensure_expiry(account, at: datetime) -> None:
    """A prepaid account in service has an expiry: none yet means it expires now."""
    if account.plan.billing == "prepaid" and account.expires_at is None:
        account.expires_at = at
        type(account).objects.filter(pk=account.pk).update(expires_at=at)
