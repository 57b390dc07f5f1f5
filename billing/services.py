"""Billing operations other apps call.

- The ledger: `customer_balance` (the sum of a customer's entries, the only balance
  there is), `record_entry` (every movement, with the customer row locked so
  concurrent updates of one account serialise), payments, credit notes, refunds.
- Postpaid invoices: `bill_due_periods` for one account, `run_billing` for a day
  (each (service account, period) is charged once: ChargedPeriod's unique constraint).
- Prorations on plan change, suspension (per-ISP charge or pause) and termination.
- Prepaid: a payment of the plan price extends the expiry by one period from the later
  of now and the current expiry (`extend_prepaid`).
- `allocate` (payments to the oldest open invoices, then prepaid extensions) and
  `restore_if_settled`: "this account is settled, restore it".
"""

import logging
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.db import IntegrityError, transaction
from django.db.models import F, Max, Sum
from django.utils import timezone

from billing import periods
from billing.models import (
    BillingRun,
    BillingSettings,
    ChargedPeriod,
    Invoice,
    InvoiceLine,
    LedgerEntry,
)
from ispops import audit

log = logging.getLogger(__name__)
CENT = periods.CENT
ZERO = Decimal("0.00")
Kind = LedgerEntry.Kind
# At most this many periods are caught up for one account in one run (a year of months).
MAX_CATCH_UP = 12


class BillingError(ValueError):
    """A billing operation the rules refuse; str() is the reason."""


# --- the ledger -----------------------------------------------------------------------


def customer_balance(customer) -> Decimal:
    """What the customer owes (positive) or holds in credit (negative): the sum of their
    ledger entries."""
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


_SIGN = {Kind.CHARGE: 1, Kind.REFUND: 1, Kind.PAYMENT: -1, Kind.CREDIT_NOTE: -1}


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
    """Add one ledger entry. `amount` is given positive for every kind but adjustments
    (signed); the entry's sign follows its kind. The customer row is locked first."""
    from subscribers.models import Customer

    amount = Decimal(amount).quantize(CENT, rounding=ROUND_HALF_UP)
    if kind in _SIGN:
        if amount <= 0:
            raise BillingError(f"a {Kind(kind).label.lower()} needs an amount above zero")
        amount *= _SIGN[kind]
    elif kind == Kind.ADJUSTMENT:
        if amount == 0:
            raise BillingError("an adjustment cannot be zero")
    else:
        raise BillingError(f"unknown ledger entry kind {kind!r}")
    user, label = audit.describe_actor(actor)
    with transaction.atomic():
        Customer.objects.select_for_update().filter(pk=customer.pk).first()
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


# --- invoices ---------------------------------------------------------------------------


def _take_numbers(field: str, prefix_field: str, count: int) -> list[str]:
    """`count` consecutive numbers from the ISP's counter, under a row lock: a rolled
    back transaction gives them back, so numbers stay gapless."""
    BillingSettings.load()
    cfg = BillingSettings.objects.select_for_update().get(pk=1)
    first = getattr(cfg, field)
    BillingSettings.objects.filter(pk=1).update(**{field: F(field) + count})
    prefix = getattr(cfg, prefix_field)
    return [f"{prefix}-{n:06d}" for n in range(first, first + count)]


@dataclass
class Draft:
    """An invoice worked out in memory, before it is numbered and saved."""

    account: object
    start: date
    end: date  # exclusive
    lines: list

    @property
    def amount(self) -> Decimal:
        return sum((line.amount for line in self.lines), ZERO)


def draft_for_period(account, start: date, end: date, cfg: BillingSettings, anchor: date) -> Draft:
    """Lines for one period: the plan (prorated for a partial first period), the add-ons
    and discounts in force on the period's first day."""
    plan = account.plan
    fixed = cfg.fixed_day if cfg.anchor == BillingSettings.Anchor.FIXED_DAY else None
    period_days = periods.full_period_days(plan.cycle, start, anchor, fixed)
    used = (end - start).days
    last = end - timedelta(days=1)
    span = f"{start:%d %b %Y} to {last:%d %b %Y}"

    def share(amount):
        return (
            Decimal(amount)
            if used >= period_days
            else periods.prorate(Decimal(amount), used, period_days)
        )

    plan_amount = share(plan.price)
    kind = InvoiceLine.Kind.PLAN if used >= period_days else InvoiceLine.Kind.PRORATION
    note = "" if used >= period_days else f" ({used} of {period_days} days)"
    lines = [
        InvoiceLine(
            kind=kind,
            description=f"{plan.name}, {span}{note}",
            amount=plan_amount,
            service_account=account,
            period_start=start,
            period_end=last,
        )
    ]
    for addon in account.addons.all():
        if addon.in_force(start):
            lines.append(
                InvoiceLine(
                    kind=InvoiceLine.Kind.ADDON,
                    description=f"{addon.name}, {span}",
                    amount=share(addon.price),
                    service_account=account,
                    period_start=start,
                    period_end=last,
                )
            )
    for discount in account.discounts.all():
        if discount.in_force(start):
            if discount.kind == "percent":
                value = (plan_amount * discount.value / 100).quantize(CENT, ROUND_HALF_UP)
            else:
                value = share(discount.value)
            value = min(value, plan_amount)  # a discount never makes the plan negative
            if value:
                lines.append(
                    InvoiceLine(
                        kind=InvoiceLine.Kind.DISCOUNT,
                        description=f"Discount: {discount.reason}",
                        amount=-value,
                        service_account=account,
                        period_start=start,
                        period_end=last,
                    )
                )
    return Draft(account, start, end, lines)


def due_periods(account, day: date, last_end: date | None, cfg: BillingSettings):
    """The periods of a postpaid account that start on or before `day` and are not
    charged yet (billed in advance), oldest first."""
    if account.activated_at is None:
        return []
    anchor = timezone.localtime(account.activated_at).date()
    fixed = cfg.fixed_day if cfg.anchor == BillingSettings.Anchor.FIXED_DAY else None
    start = last_end or anchor
    found = []
    while start <= day and len(found) < MAX_CATCH_UP:
        period_start, period_end = periods.period_containing(
            account.plan.cycle, anchor, start, fixed
        )
        period_start = max(period_start, start)
        found.append((period_start, period_end))
        start = period_end
    return found


def _save_drafts(drafts, cfg, run, day, actor) -> list[Invoice]:
    """Number and store drafts with their lines, charged periods and ledger charges."""
    numbers = _take_numbers("next_invoice_number", "invoice_prefix", len(drafts))
    user, label = audit.describe_actor(actor)
    now = timezone.now()
    due = day + timedelta(days=cfg.due_days)
    invoices = []
    for number, draft in zip(numbers, drafts, strict=True):
        subtotal, vat, total = periods.split_vat(draft.amount, cfg.vat_rate, cfg.vat_inclusive)
        invoices.append(
            Invoice(
                number=number,
                customer_id=draft.account.customer_id,
                service_account=draft.account,
                period_start=draft.start,
                period_end=draft.end - timedelta(days=1),
                issued_on=day,
                due_on=due,
                subtotal=subtotal,
                vat=vat,
                total=total,
                vat_rate=cfg.vat_rate,
                vat_inclusive=cfg.vat_inclusive,
                billing_run=run,
                created_at=now,
                status=Invoice.Status.OPEN if total > 0 else Invoice.Status.PAID,
            )
        )
    Invoice.objects.bulk_create(invoices)
    lines, charged, entries = [], [], []
    for invoice, draft in zip(invoices, drafts, strict=True):
        for line in draft.lines:
            line.invoice = invoice
            lines.append(line)
        charged.append(
            ChargedPeriod(
                service_account=draft.account,
                period_start=draft.start,
                period_end=draft.end - timedelta(days=1),
                invoice=invoice,
                created_at=now,
            )
        )
        if invoice.total > 0:
            entries.append(
                LedgerEntry(
                    customer_id=invoice.customer_id,
                    kind=Kind.CHARGE,
                    amount=invoice.total,
                    description=f"Invoice {invoice.number}",
                    invoice=invoice,
                    service_account=draft.account,
                    reference=invoice.number,
                    at=now,
                    actor=user,
                    actor_label=label,
                )
            )
    InvoiceLine.objects.bulk_create(lines, batch_size=5000)
    ChargedPeriod.objects.bulk_create(charged, batch_size=5000)
    LedgerEntry.objects.bulk_create(entries, batch_size=5000)
    return invoices


def billable_accounts(cfg: BillingSettings):
    from subscribers.models import Billing, ServiceAccount

    statuses = ["active"]
    if cfg.when_suspended == BillingSettings.Suspended.CHARGE:
        statuses.append("suspended")
    return ServiceAccount.objects.filter(
        status__in=statuses, plan__billing=Billing.POSTPAID, activated_at__isnull=False
    )


def bill_accounts(accounts, day: date, *, run=None, actor) -> list[Invoice]:
    """Charge every due period of these accounts, in one transaction. The settings row
    is locked first, so a concurrent run waits and then sees what this one charged; the
    unique constraint on ChargedPeriod is the backstop."""
    from django.db.models import Prefetch

    from subscribers.models import AddOn, Discount

    cfg = BillingSettings.load()
    with transaction.atomic():
        BillingSettings.objects.select_for_update().get(pk=1)
        ids = [a.pk for a in accounts]
        last = dict(
            ChargedPeriod.objects.filter(service_account_id__in=ids)
            .values_list("service_account_id")
            .annotate(m=Max("period_end"))
            .order_by()
        )
        fresh = list(
            billable_accounts(cfg)
            .filter(pk__in=ids)
            .select_related("plan")
            .prefetch_related(
                Prefetch("addons", queryset=AddOn.objects.all()),
                Prefetch("discounts", queryset=Discount.objects.all()),
            )
        )
        drafts = []
        for account in fresh:
            last_end = last.get(account.pk)
            start_from = last_end + timedelta(days=1) if last_end else None
            anchor = timezone.localtime(account.activated_at).date()
            for start, end in due_periods(account, day, start_from, cfg):
                drafts.append(draft_for_period(account, start, end, cfg, anchor))
        if not drafts:
            return []
        invoices = _save_drafts(drafts, cfg, run, day, actor)
        _use_credit({invoice.customer_id for invoice in invoices})
    return invoices


def _use_credit(customer_ids) -> None:
    """New invoices are paid from credit the customers already hold (an overpayment, a
    voided paid invoice): two grouped queries find the few who have any."""
    from subscribers.models import Customer

    owed = balances(customer_ids)
    wanted = dict(
        Invoice.objects.filter(customer_id__in=customer_ids)
        .exclude(status=Invoice.Status.VOID)
        .values_list("customer_id")
        .annotate(s=Sum(F("total") - F("amount_paid")))
        .order_by()
    )
    with_credit = [c for c in customer_ids if wanted.get(c, ZERO) - (owed.get(c) or ZERO) > 0]
    for customer in Customer.objects.filter(pk__in=with_credit):
        allocate(customer)


def run_billing(day: date, *, actor, chunk: int = 500, progress=None) -> BillingRun:
    """The billing run for `day`: every postpaid account's due periods, once. Safe to run
    twice and to run twice at once. Progress is saved on the run row as it goes."""
    cfg = BillingSettings.load()
    _, label = audit.describe_actor(actor)
    # Accounts whose charged periods already reach past `day` have nothing due: left out
    # in one query, so a re-run of a billed day costs little.
    ids = list(
        billable_accounts(cfg)
        .exclude(charged_periods__period_end__gte=day)
        .order_by("id")
        .values_list("id", flat=True)
    )
    run = BillingRun.objects.create(run_date=day, total_accounts=len(ids), started_by=label)
    from subscribers.models import ServiceAccount

    for offset in range(0, len(ids), chunk):
        batch = ids[offset : offset + chunk]
        accounts = list(ServiceAccount.objects.filter(pk__in=batch).only("id"))
        try:
            invoices = bill_accounts(accounts, day, run=run, actor=actor)
        except IntegrityError:
            # Another run charged some of these meanwhile: one account at a time.
            invoices = []
            for account in accounts:
                try:
                    invoices += bill_accounts([account], day, run=run, actor=actor)
                except IntegrityError:
                    continue
                except Exception as exc:
                    run.errors.append({"account": account.pk, "error": str(exc)[:300]})
        except Exception as exc:
            log.exception("billing run %s: chunk at %s failed", day, offset)
            run.errors.append({"accounts": f"{batch[0]}..{batch[-1]}", "error": str(exc)[:300]})
            invoices = []
        BillingRun.objects.filter(pk=run.pk).update(
            processed=F("processed") + len(batch),
            invoice_count=F("invoice_count") + len(invoices),
            amount=F("amount") + sum((i.total for i in invoices), ZERO),
            errors=run.errors,
        )
        if progress:
            progress(min(offset + chunk, len(ids)), len(ids))
    BillingRun.objects.filter(pk=run.pk).update(
        state=BillingRun.State.DONE if not run.errors else BillingRun.State.FAILED,
        finished_at=timezone.now(),
    )
    run.refresh_from_db()
    return run


# --- prorations on changes ---------------------------------------------------------------


def _current_charge(account, day: date):
    return (
        ChargedPeriod.objects.filter(
            service_account=account, period_start__lte=day, period_end__gte=day
        )
        .select_related("invoice")
        .first()
    )


def _unused_share(account, amount, charged, day: date) -> Decimal:
    """The part of `amount` covering the days from `day` to the period's end."""
    cfg = BillingSettings.load()
    fixed = cfg.fixed_day if cfg.anchor == BillingSettings.Anchor.FIXED_DAY else None
    anchor = timezone.localtime(account.activated_at).date() if account.activated_at else day
    period_days = periods.full_period_days(account.plan.cycle, charged.period_start, anchor, fixed)
    remaining = (charged.period_end - day).days + 1
    remaining = max(0, min(remaining, period_days))
    return periods.prorate(Decimal(amount), remaining, period_days)


def credit_unused(account, day: date, *, actor, reason: str) -> LedgerEntry | None:
    """Credit the days of the charged period from `day` on (termination, a paused
    suspension): a credit note on the ledger."""
    charged = _current_charge(account, day)
    if charged is None or account.plan.billing != "postpaid":
        return None
    amount = _unused_share(account, account.plan.price, charged, day)
    if amount <= 0:
        return None
    number = _take_numbers("next_credit_note_number", "credit_note_prefix", 1)[0]
    return record_entry(
        account.customer,
        Kind.CREDIT_NOTE,
        amount,
        actor=actor,
        description=f"{reason}: unused days of {charged.invoice.number}",
        invoice=charged.invoice,
        service_account=account,
        reference=number,
    )


def on_plan_change(account, old_plan, new_plan, day: date, *, actor) -> None:
    """Mid-cycle: credit the unused part of the old plan, charge the new plan for the
    rest of the period (an invoice for an upgrade's difference, a credit note for a
    downgrade's)."""
    if account.plan.billing != "postpaid" and old_plan.billing != "postpaid":
        return
    charged = _current_charge(account, day)
    if charged is None:
        return
    credit = _unused_share(account, old_plan.price, charged, day)
    charge = _unused_share(account, new_plan.price, charged, day)
    difference = charge - credit
    if difference == 0:
        return
    cfg = BillingSettings.load()
    if difference > 0:
        with transaction.atomic():
            number = _take_numbers("next_invoice_number", "invoice_prefix", 1)[0]
            subtotal, vat, total = periods.split_vat(difference, cfg.vat_rate, cfg.vat_inclusive)
            invoice = Invoice.objects.create(
                number=number,
                customer=account.customer,
                service_account=account,
                period_start=day,
                period_end=charged.period_end,
                issued_on=day,
                due_on=day + timedelta(days=cfg.due_days),
                subtotal=subtotal,
                vat=vat,
                total=total,
                vat_rate=cfg.vat_rate,
                vat_inclusive=cfg.vat_inclusive,
            )
            InvoiceLine.objects.bulk_create(
                [
                    InvoiceLine(
                        invoice=invoice,
                        kind=InvoiceLine.Kind.CREDIT,
                        description=f"Unused {old_plan.name} from {day:%d %b %Y}",
                        amount=-credit,
                        service_account=account,
                    ),
                    InvoiceLine(
                        invoice=invoice,
                        kind=InvoiceLine.Kind.PRORATION,
                        description=f"{new_plan.name} from {day:%d %b %Y}",
                        amount=charge,
                        service_account=account,
                    ),
                ]
            )
            record_entry(
                account.customer,
                Kind.CHARGE,
                total,
                actor=actor,
                description=f"Invoice {number} (plan change)",
                invoice=invoice,
                service_account=account,
                reference=number,
            )
    else:
        number = _take_numbers("next_credit_note_number", "credit_note_prefix", 1)[0]
        record_entry(
            account.customer,
            Kind.CREDIT_NOTE,
            -difference,
            actor=actor,
            description=f"Plan change {old_plan.name} to {new_plan.name}: unused difference",
            service_account=account,
            reference=number,
        )


def on_status_change(account, current: str, to: str, *, actor) -> None:
    """What billing does when a service account moves (called by subscribers in the same
    transaction): credit unused days on termination and on a paused suspension; start
    a prepaid account's expiry at activation."""
    today = timezone.localdate()
    cfg = BillingSettings.load()
    if to == "active" and current != "suspended" and account.plan.billing == "prepaid":
        if account.expires_at is None:
            # Nothing paid yet: service runs until the first payment or the grace ends.
            type(account).objects.filter(pk=account.pk).update(expires_at=timezone.now())
    elif to == "terminated":
        credit_unused(account, today, actor=actor, reason="Terminated")
    elif to == "suspended" and cfg.when_suspended == BillingSettings.Suspended.PAUSE:
        credit_unused(account, today, actor=actor, reason="Suspended (charges paused)")
    elif (
        to == "active"
        and current == "suspended"
        and cfg.when_suspended == BillingSettings.Suspended.PAUSE
        and account.plan.billing == "postpaid"
    ):
        _recharge_after_pause(account, today, actor)


def _recharge_after_pause(account, day, actor):
    """Back from a paused suspension mid-period: charge the days left in it."""
    charged = _current_charge(account, day)
    if charged is None:
        return
    amount = _unused_share(account, account.plan.price, charged, day)
    if amount > 0:
        record_entry(
            account.customer,
            Kind.CHARGE,
            amount,
            actor=actor,
            description=f"Service restored: {account.plan.name} until "
            f"{charged.period_end:%d %b %Y}",
            service_account=account,
            invoice=charged.invoice,
        )


# --- payments, allocation, prepaid, settlement ---------------------------------------------


def allocate(customer) -> list[Invoice]:
    """Spread the customer's unallocated credit over their open invoices, oldest first.
    Credit = what was paid or credited and not yet allocated (the negative side of the
    ledger beyond the invoices' paid amounts)."""
    from subscribers.models import Customer

    with transaction.atomic():
        Customer.objects.select_for_update().filter(pk=customer.pk).first()
        open_invoices = list(
            Invoice.objects.select_for_update()
            .filter(customer=customer, status=Invoice.Status.OPEN)
            .order_by("due_on", "id")
        )
        available = unallocated_credit(customer)
        touched = []
        for invoice in open_invoices:
            if available <= 0:
                break
            take = min(available, invoice.outstanding)
            invoice.amount_paid += take
            available -= take
            if invoice.amount_paid >= invoice.total:
                invoice.status = Invoice.Status.PAID
            invoice.save(update_fields=["amount_paid", "status"])
            touched.append(invoice)
    return touched


def reverse_payment_entry(entry: LedgerEntry, *, actor, reason: str) -> LedgerEntry:
    """Take a payment back off the ledger (a bounced cheque, money put on the wrong
    customer): an adjustment for the same amount, then invoices the payment had settled
    are reopened, newest first, as far as the credit no longer covers them."""
    from subscribers.models import Customer

    if entry is None or entry.kind != Kind.PAYMENT:
        raise BillingError("only a payment can be reversed")
    with transaction.atomic():
        Customer.objects.select_for_update().filter(pk=entry.customer_id).first()
        reversal = record_entry(
            entry.customer,
            Kind.ADJUSTMENT,
            -entry.amount,
            actor=actor,
            description=f"Reversal of {entry.reference or 'payment'}: {reason}",
            reference=entry.reference,
        )
        _unallocate_excess(entry.customer)
    return reversal


def _unallocate_excess(customer) -> None:
    """Invoices hold more paid than the ledger's credits cover: reopen the newest."""
    excess = -_credit_left(customer)
    if excess <= 0:
        return
    for invoice in (
        Invoice.objects.select_for_update()
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


def unallocated_credit(customer) -> Decimal:
    """Money paid or credited that no invoice has taken yet (never negative)."""
    return max(ZERO, _credit_left(customer))


def _credit_left(customer) -> Decimal:
    """What the open invoices still want minus what the ledger says is owed: the money
    no invoice has taken yet (negative when invoices hold more than was paid, after a
    reversal). Charges without an invoice (prepaid extensions) are in the balance, so
    they use credit; a void invoice's charge and its credit note cancel out, so voiding
    an unpaid invoice frees no money, and what was paid on it becomes credit."""
    balance = LedgerEntry.objects.filter(customer=customer).aggregate(s=Sum("amount"))["s"]
    outstanding = (
        Invoice.objects.filter(customer=customer)
        .exclude(status=Invoice.Status.VOID)
        .aggregate(s=Sum(F("total") - F("amount_paid")))["s"]
    )
    return (outstanding or ZERO) - (balance or ZERO)


def extend_prepaid(account, *, actor, now=None) -> int:
    """Use the customer's credit to extend a prepaid account: each plan price paid adds
    one period from the later of now and the current expiry. A part payment is held as
    credit, or extends in proportion, per the ISP's setting. Returns periods added."""
    from subscribers.models import ServiceAccount

    now = now or timezone.now()
    cfg = BillingSettings.load()
    with transaction.atomic():
        locked = (
            ServiceAccount.objects.select_for_update()
            .select_related("plan", "customer")
            .get(pk=account.pk)
        )
        price = locked.plan.price
        added = 0
        while price > 0 and unallocated_credit(locked.customer) >= price:
            start = max(now, locked.expires_at or now)
            locked.expires_at = _one_period_after(locked.plan.cycle, start)
            record_entry(
                locked.customer,
                Kind.CHARGE,
                price,
                actor=actor,
                description=f"{locked.plan.name} until "
                f"{timezone.localtime(locked.expires_at):%d %b %Y %H:%M}",
                service_account=locked,
            )
            added += 1
        credit = unallocated_credit(locked.customer)
        if cfg.prepaid_partial == BillingSettings.Partial.PRORATE and 0 < credit < price:
            start = max(now, locked.expires_at or now)
            length = _one_period_after(locked.plan.cycle, start) - start
            locked.expires_at = start + length * float(credit / price)
            record_entry(
                locked.customer,
                Kind.CHARGE,
                credit,
                actor=actor,
                description=f"{locked.plan.name}, part period until "
                f"{timezone.localtime(locked.expires_at):%d %b %Y %H:%M}",
                service_account=locked,
            )
        locked.save(update_fields=["expires_at"])
    account.refresh_from_db()
    return added


def _one_period_after(cycle: str, moment: datetime) -> datetime:
    if cycle == "hourly":
        return moment + timedelta(hours=1)
    if cycle == "daily":
        return moment + timedelta(days=1)
    if cycle == "weekly":
        return moment + timedelta(days=7)
    local = timezone.localtime(moment)
    moved = periods.add_months(local.date(), 1)
    return local.replace(year=moved.year, month=moved.month, day=moved.day)


def record_payment(
    customer, amount, *, actor, reference: str, description: str = "Payment"
) -> LedgerEntry:
    """A payment received (cash, bank, M-Pesa): on the ledger, allocated to the oldest
    open invoices, then to prepaid extensions; the customer restored if now settled."""
    with transaction.atomic():
        entry = record_entry(
            customer,
            Kind.PAYMENT,
            amount,
            actor=actor,
            description=description,
            reference=reference,
        )
        allocate(customer)
        for account in customer.service_accounts.filter(
            plan__billing="prepaid", status__in=["active", "suspended"]
        ).order_by("expires_at", "id"):
            extend_prepaid(account, actor=actor)
        restore_if_settled(customer, actor=actor)
    return entry


def is_settled(account, now=None) -> bool:
    """Nothing overdue: a prepaid account's expiry is in the future; a postpaid one has
    no open invoice past its due date."""
    now = now or timezone.now()
    if account.plan.billing == "prepaid":
        return account.expires_at is not None and account.expires_at > now
    return not Invoice.objects.filter(
        customer_id=account.customer_id,
        status=Invoice.Status.OPEN,
        due_on__lt=timezone.localdate(now),
    ).exists()


def restore_if_settled(customer, *, actor) -> list:
    """This account is settled, restore it: every suspended service account of the
    customer with nothing overdue goes back to active (the router job follows)."""
    from subscribers import services as subscribers

    restored = []
    for account in customer.service_accounts.filter(status="suspended").select_related("plan"):
        if is_settled(account):
            subscribers.change_status(
                account, "active", actor=actor, reason="Settled: payment received"
            )
            restored.append(account)
    return restored


def void_invoice(invoice: Invoice, *, actor, reason: str) -> LedgerEntry:
    """Cancel an invoice: it is kept, marked void, and a credit note takes its charge
    off the ledger. What was paid on it becomes the customer's credit."""
    reason = (reason or "").strip()
    if not reason:
        raise BillingError("say why the invoice is voided")
    with transaction.atomic():
        locked = Invoice.objects.select_for_update().get(pk=invoice.pk)
        if locked.status == Invoice.Status.VOID:
            raise BillingError(f"invoice {locked.number} is already void")
        charged = (
            LedgerEntry.objects.filter(invoice=locked, kind=Kind.CHARGE).aggregate(s=Sum("amount"))[
                "s"
            ]
            or ZERO
        )
        number = _take_numbers("next_credit_note_number", "credit_note_prefix", 1)[0]
        with audit.acting_as(actor):
            locked.status, locked.voided_at = Invoice.Status.VOID, timezone.now()
            locked.void_reason = reason[:255]
            locked.save(update_fields=["status", "voided_at", "void_reason"])
        entry = None
        if charged > 0:
            entry = record_entry(
                locked.customer,
                Kind.CREDIT_NOTE,
                charged,
                actor=actor,
                description=f"Credit note for void invoice {locked.number}: {reason}",
                invoice=locked,
                reference=number,
            )
        allocate(locked.customer)
    invoice.refresh_from_db()
    return entry


def overdue_invoices(day: date):
    return Invoice.objects.filter(status=Invoice.Status.OPEN, due_on__lt=day)


def aged_debt(day: date, customers=None) -> dict:
    """Outstanding on open invoices by age past due: current, 1-30, 31-60, 61-90, 90+
    (of `customers`, a queryset, when given: a branch-limited view)."""
    buckets = {"current": ZERO, "1-30": ZERO, "31-60": ZERO, "61-90": ZERO, "90+": ZERO}
    invoices = Invoice.objects.filter(status=Invoice.Status.OPEN)
    if customers is not None:
        invoices = invoices.filter(customer__in=customers)
    rows = invoices.values_list("due_on", "total", "amount_paid")
    for due_on, total, paid in rows:
        late = (day - due_on).days
        key = (
            "current"
            if late <= 0
            else "1-30"
            if late <= 30
            else "31-60"
            if late <= 60
            else "61-90"
            if late <= 90
            else "90+"
        )
        buckets[key] += total - paid
    return buckets


def day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def issue_credit_note(customer, amount, *, actor, reason: str, invoice=None) -> LedgerEntry:
    """A numbered credit note: on the ledger, allocated to open invoices, and the
    customer restored if that settles them."""
    with transaction.atomic():
        number = _take_numbers("next_credit_note_number", "credit_note_prefix", 1)[0]
        entry = record_entry(
            customer,
            Kind.CREDIT_NOTE,
            amount,
            actor=actor,
            description=reason,
            invoice=invoice,
            reference=number,
        )
        allocate(customer)
        restore_if_settled(customer, actor=actor)
    return entry
