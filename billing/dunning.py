"""Dunning: reminders before and after an invoice's due date (or a prepaid expiry), then a
soft suspension (walled garden) once the grace period is over, then a hard one (login
disabled) after a further period, unless a hold (a VIP exemption or a promise to pay)
says otherwise.

Every step is a DunningAction row written in the transaction that takes the step; the
row's unique (customer, step, key) constraint is what makes a re-run of the same day, or
two runs at once, take each step once. Candidates are found with set-based queries (the
invoices due on a reminder day, the invoices past their grace, the expiries in the
windows), so a run costs what there is to do, not what the ISP has.
"""

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from billing import expiry, prepaid
from billing.ledger import lock_customer, lock_customers
from billing.models import BillingSettings, DunningAction, DunningHold, Invoice
from billing.services import day_start, moment_for
from ispops import audit
from ispops.messaging import services as messaging
from subscribers.bulk import suspend_many
from subscribers.models import Billing, ServiceAccount

log = logging.getLogger(__name__)

Step = DunningAction.Step
# Reminders are written (and their messages queued) this many at a time, one
# transaction each.
BATCH = 500
# Accounts soft-suspended per transaction.
SUSPEND_BATCH = 100


class DunningError(ValueError):
    """A hold the rules refuse; str() is the reason shown to staff."""


@dataclass
class DunningReport:
    day: date
    reminders: int = 0
    soft: int = 0
    hard: int = 0
    # Suspensions (soft or hard) a hold stopped.
    held: int = 0
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"Dunning {self.day.isoformat()}: {self.reminders} reminders, {self.soft} soft, "
            f"{self.hard} hard, {self.held} held, {len(self.errors)} errors"
        )


# --- holds ------------------------------------------------------------------------------


def active_holds(day: date):
    """Holds in force on `day`: not ended, and an exemption without an end or any hold
    whose date has not passed."""
    return DunningHold.objects.filter(ended_at__isnull=True).filter(
        Q(kind=DunningHold.Kind.EXEMPT, until__isnull=True) | Q(until__gte=day)
    )


def _exempt(day: date):
    return active_holds(day).filter(kind=DunningHold.Kind.EXEMPT)


def held_customers(day: date, customer_ids) -> set[int]:
    return set(
        active_holds(day).filter(customer_id__in=customer_ids).values_list("customer_id", flat=True)
    )


def add_hold(
    customer, kind: str, until: date | None, note: str = "", *, actor, today: date | None = None
) -> DunningHold:
    """Stop suspensions for a customer: an exemption (VIP; `until` optional) or a promise
    to pay by `until`. Reminders still go to a customer who promised to pay."""
    if kind not in DunningHold.Kind.values:
        raise DunningError(f"unknown kind of hold {kind!r}")
    today = today or timezone.localdate()
    if kind == DunningHold.Kind.PROMISE and until is None:
        raise DunningError("a promise to pay needs the date the customer will pay by")
    if until is not None and until < today:
        raise DunningError("the date has passed: give today or a later day")
    note = (note or "").strip()[:255]
    _, label = audit.describe_actor(actor)
    with transaction.atomic(), audit.acting_as(actor):
        hold = DunningHold.objects.create(
            customer=customer, kind=kind, until=until, note=note, created_by=label
        )
        audit.record(
            hold,
            "create",
            {
                "customer": customer.account,
                "kind": kind,
                "until": until.isoformat() if until else None,
                "note": note,
            },
            actor=actor,
        )
    return hold


def end_hold(hold: DunningHold, *, actor) -> bool:
    """End a hold now; dunning goes on from the next run. False if it had ended already."""
    with transaction.atomic(), audit.acting_as(actor):
        now = timezone.now()
        ended = DunningHold.objects.filter(pk=hold.pk, ended_at__isnull=True).update(ended_at=now)
        if ended:
            hold.ended_at = now
            audit.record(hold, "update", {"ended_at": [None, now.isoformat()]}, actor=actor)
    return bool(ended)


# --- the run ----------------------------------------------------------------------------


@dataclass
class _Reminder:
    customer: object
    key: str
    template: str
    context: dict
    related: str
    invoice: object = None
    account: object = None


def open_with_balance():
    return Invoice.objects.unpaid()


def _not_exempt(queryset, day: date, customer_field: str = "customer_id"):
    return queryset.filter(~Exists(_exempt(day).filter(customer_id=OuterRef(customer_field))))


def run_dunning(day: date, *, actor, at=None) -> DunningReport:
    """Take the dunning steps due on `day`, acting as of `at` (default: `moment_for`,
    which refuses a day to come): reminders (those a missed day left unsent too), then
    soft and hard suspensions. Safe to run again the same day (nothing is done twice)
    and to run twice at once, or beside a billing run."""
    at = at or moment_for(day, timezone.now())
    cfg = BillingSettings.load()
    report = DunningReport(day=day)
    reminders = _postpaid_reminders(day, cfg) + _missed_reminders(day, cfg)
    _send_reminders(reminders + _prepaid_reminders(day, cfg), day, report)
    _soft_postpaid(day, cfg, report, actor, at)
    _soft_prepaid(day, cfg, report, actor, at)
    _harden(day, cfg, report, actor, at)
    return report


def _postpaid_reminders(day: date, cfg: BillingSettings) -> list[_Reminder]:
    """Open invoices due `d` days after `day` (before) or `d` days before it (after)."""
    wanted: dict[date, list[tuple[str, int]]] = defaultdict(list)
    for d in sorted(set(cfg.reminder_days_before)):
        wanted[day + timedelta(days=d)].append(("before", d))
    for d in sorted(set(cfg.reminder_days_after)):
        wanted[day - timedelta(days=d)].append(("after", d))
    if not wanted:
        return []
    invoices = _not_exempt(open_with_balance().filter(due_on__in=list(wanted)), day)
    return [
        _invoice_reminder(invoice, f"inv{invoice.pk}:{side}:{d}", side, cfg)
        for invoice in invoices.select_related("customer").order_by("id")
        for side, d in wanted[invoice.due_on]
    ]


def _invoice_reminder(invoice, key: str, side: str, cfg: BillingSettings) -> _Reminder:
    return _Reminder(
        customer=invoice.customer,
        key=key,
        template=f"payment_reminder_{side}",
        context={
            "invoice": {"number": invoice.number},
            "amount": invoice.outstanding,
            "due_on": invoice.due_on,
            "paybill": cfg.paybill,
        },
        related=f"invoice:{invoice.pk}",
        invoice=invoice,
        account=invoice.service_account_id,
    )


def _sends_reminders(cfg: BillingSettings) -> bool:
    return bool(cfg.reminder_days_before or cfg.reminder_days_after)


def _missed_reminders(day: date, cfg: BillingSettings) -> list[_Reminder]:
    """Overdue invoices that never had a reminder (dunning did not run on the days one
    was due): the latest reminder they should have had, so nobody is suspended unwarned."""
    if not _sends_reminders(cfg):
        return []
    reminded = DunningAction.objects.filter(invoice_id=OuterRef("pk"), step=Step.REMINDER)
    invoices = _not_exempt(
        open_with_balance().filter(due_on__lt=day).filter(~Exists(reminded)), day
    ).select_related("customer")
    found = []
    for invoice in invoices.order_by("id"):
        late = (day - invoice.due_on).days
        passed = [d for d in cfg.reminder_days_after if d <= late]
        if late in cfg.reminder_days_after:
            continue  # today's own reminder is on its way (_postpaid_reminders)
        key = f"inv{invoice.pk}:after:{max(passed)}" if passed else f"inv{invoice.pk}:overdue"
        found.append(_invoice_reminder(invoice, key, "after", cfg))
    return found


def _prepaid_reminders(day: date, cfg: BillingSettings) -> list[_Reminder]:
    """Active prepaid accounts expiring `d` days after `day`."""
    days = sorted(set(cfg.reminder_days_before))
    if not days:
        return []
    windows = Q()
    for d in days:
        start = day + timedelta(days=d)
        windows |= Q(
            expires_at__gte=day_start(start), expires_at__lt=day_start(start + timedelta(1))
        )
    accounts = _not_exempt(
        ServiceAccount.objects.filter(
            windows, status=ServiceAccount.Status.ACTIVE, plan__billing=Billing.PREPAID
        ),
        day,
    ).select_related("customer", "plan")
    found = []
    for account in accounts.order_by("id"):
        expiry = timezone.localtime(account.expires_at)
        d = (expiry.date() - day).days
        found.append(
            _Reminder(
                customer=account.customer,
                key=f"acct{account.pk}:expiry:{expiry.date().isoformat()}:{d}",
                template="expiry_reminder",
                context={
                    "plan": account.plan.name,
                    "expires_at": expiry,
                    "amount": prepaid.term_cost(account.plan, day, cfg),
                    "paybill": cfg.paybill,
                },
                related=f"account:{account.pk}",
                account=account.pk,
            )
        )
    return found


def _send_reminders(reminders: list[_Reminder], day: date, report: DunningReport) -> None:
    """Record and queue reminders a batch per transaction. Those already recorded are
    left out; a batch that fails is retried one reminder at a time, so one bad row
    costs only itself."""
    for offset in range(0, len(reminders), BATCH):
        batch = reminders[offset : offset + BATCH]
        done = set(
            DunningAction.objects.filter(
                customer_id__in={r.customer.pk for r in batch},
                step=Step.REMINDER,
                key__in=[r.key for r in batch],
            ).values_list("customer_id", "key")
        )
        todo = [r for r in batch if (r.customer.pk, r.key) not in done]
        if not todo:
            continue
        try:
            with transaction.atomic():
                report.reminders += _remind(todo, day)
        except Exception:
            log.exception("dunning %s: a batch of reminders failed; one at a time", day)
            for reminder in todo:
                try:
                    with transaction.atomic():
                        report.reminders += _remind([reminder], day)
                except Exception as exc:
                    log.exception("dunning %s: reminder %s failed", day, reminder.key)
                    report.errors.append(f"reminder {reminder.key}: {exc}"[:300])


def _remind(reminders: list[_Reminder], day: date) -> int:
    rows = [
        DunningAction(
            customer=r.customer,
            service_account_id=r.account,
            invoice=r.invoice,
            step=Step.REMINDER,
            key=r.key,
            on_date=day,
            detail=r.template,
        )
        for r in reminders
    ]
    try:
        with transaction.atomic():
            DunningAction.objects.bulk_create(rows)
        claimed = reminders
    except IntegrityError:
        # Another run recorded some of them meanwhile: claim one at a time.
        claimed = []
        for reminder, row in zip(reminders, rows, strict=True):
            row.pk = None
            try:
                with transaction.atomic():
                    row.save(force_insert=True)
            except IntegrityError:
                continue
            claimed.append(reminder)
    messaging.notify_many((r.customer, r.template, r.context, r.related) for r in claimed)
    return len(claimed)


def _claim(customer_id, step: str, key: str, day: date, *, account=None, invoice=None, detail=""):
    """Record that this step is taken; False if it was taken before (the unique
    constraint), in which case the caller does nothing."""
    try:
        with transaction.atomic():
            DunningAction.objects.create(
                customer_id=customer_id,
                service_account=account,
                invoice=invoice,
                step=step,
                key=key,
                on_date=day,
                detail=detail[:255],
            )
    except IntegrityError:
        return False
    return True


def _grace_cutoff(day: date, cfg: BillingSettings) -> date:
    """The latest due date whose invoice is past its grace on `day`. An invoice is
    payable all of its due day, so it is never acted on before the day after."""
    return day - timedelta(days=max(cfg.grace_days, 1))


def _soft_postpaid(day: date, cfg: BillingSettings, report: DunningReport, actor, at) -> None:
    # Driven from the overdue invoices (few) on their own, then their accounts by key:
    # no join the planner could misjudge into a scan of every account per invoice.
    overdue = (
        open_with_balance()
        .filter(due_on__lte=_grace_cutoff(day, cfg))
        .order_by("due_on", "id")
        .values_list("id", "service_account_id", "customer_id")
    )
    by_account: dict[int, list[int]] = defaultdict(list)
    # An invoice of no service account suspends every active postpaid account the
    # customer has.
    by_customer: dict[int, list[int]] = defaultdict(list)
    for invoice_id, account_id, customer_id in overdue:
        if account_id:
            by_account[account_id].append(invoice_id)
        else:
            by_customer[customer_id].append(invoice_id)
    live = ServiceAccount.objects.filter(status=ServiceAccount.Status.ACTIVE).values_list(
        "id", "customer_id"
    )
    if by_customer:  # an invoice of no account suspends the customer's postpaid accounts
        live_loose = live.filter(plan__billing=Billing.POSTPAID)
    targets: dict[int, list[int]] = {}  # account -> invoices, oldest first
    owners: dict[int, int] = {}
    for account_id, customer_id in live.filter(pk__in=list(by_account)) if by_account else ():
        targets[account_id] = by_account[account_id]
        owners[account_id] = customer_id
    if by_customer:
        for account_id, customer_id in live_loose.filter(customer_id__in=list(by_customer)):
            targets[account_id] = sorted(
                set(targets.get(account_id, ())) | set(by_customer[customer_id])
            )
            owners[account_id] = customer_id
    held = held_customers(day, set(owners.values()))
    todo = []
    for account_id in sorted(targets):
        if owners[account_id] in held:
            report.held += 1
        else:
            todo.append(account_id)
    for offset in range(0, len(todo), SUSPEND_BATCH):
        batch = {i: targets[i] for i in todo[offset : offset + SUSPEND_BATCH]}
        try:
            report.soft += _suspend_for_invoices(batch, owners, day, cfg, actor, at)
        except Exception as exc:
            first, last = min(batch), max(batch)
            log.exception("dunning %s: soft suspension of accounts %s..%s failed", day, first, last)
            report.errors.append(f"accounts {first}..{last}: {exc}"[:300])


def _suspend_for_invoices(targets: dict, owners: dict, day, cfg, actor, at) -> int:
    """Soft-suspend a batch of accounts for their unpaid invoices (account -> invoice
    ids) in one transaction. Customers are locked first, as a payment does, so a
    suspension never follows a payment it did not see. An account is suspended for its
    oldest invoice still unpaid that had a reminder on an earlier day, once per stretch
    of service (a customer restored and unpaid again is suspended again)."""
    with transaction.atomic():
        lock_customers({owners[a] for a in targets})
        wanted = {i for ids in targets.values() for i in ids}
        still_open = list(
            open_with_balance().filter(pk__in=wanted).order_by("due_on", "id").only("id", "number")
        )
        reminded = set(
            DunningAction.objects.filter(
                invoice_id__in=wanted, step=Step.REMINDER, on_date__lt=day
            ).values_list("invoice_id", flat=True)
        )
        stretch = expiry.episodes(list(targets))
        candidates = {  # account -> [(key, invoice)], oldest invoice first
            account_id: [
                (f"acct{account_id}:soft:inv{invoice.pk}:e{stretch.get(account_id, 0)}", invoice)
                for invoice in still_open
                if invoice.pk in ids and (invoice.pk in reminded or not _sends_reminders(cfg))
            ]
            for account_id, ids in targets.items()
        }
        taken = set(
            DunningAction.objects.filter(
                customer_id__in={owners[a] for a in targets},
                step=Step.SOFT_SUSPEND,
                key__in=[key for pairs in candidates.values() for key, _ in pairs],
            ).values_list("key", flat=True)
        )
        claims = {}
        for account_id, pairs in candidates.items():
            free = [(key, invoice) for key, invoice in pairs if key not in taken]
            if free:
                key, invoice = free[0]
                claims[account_id] = (key, invoice, f"Unpaid invoice {invoice.number}")
        accounts = suspend_many(
            list(claims), actor=actor, reasons={a: c[2] for a, c in claims.items()}, at=at
        )
        DunningAction.objects.bulk_create(
            DunningAction(
                customer_id=a.customer_id,
                service_account=a,
                invoice=claims[a.pk][1],
                step=Step.SOFT_SUSPEND,
                key=claims[a.pk][0],
                on_date=day,
                detail=claims[a.pk][2],
            )
            for a in accounts
        )
        expiry.notify_soft_suspended(accounts, at, cfg)
    return len(accounts)


def enforce_prepaid_expiry(at, *, actor) -> expiry.ExpiryReport:
    """Suspend expired prepaid accounts as of `at` (billing.expiry), holds respected:
    what the every-minute task and the daily run both do."""
    cfg = BillingSettings.load()
    expired = expiry.expired_accounts(at, cfg).values_list("customer_id", flat=True)
    held = held_customers(timezone.localdate(at), set(expired))
    return expiry.enforce_expiry(at, actor=actor, held_customers=held)


def _soft_prepaid(day: date, cfg: BillingSettings, report: DunningReport, actor, at) -> None:
    """The daily backstop of the every-minute expiry task."""
    done = enforce_prepaid_expiry(at, actor=actor)
    report.soft += done.suspended
    report.held += done.held
    report.errors += done.errors


def soft_suspended_due(day: date, cfg: BillingSettings, until: date, at=None):
    """Soft-suspended accounts whose customer still owes (an open invoice past due; for
    prepaid, also the paid period over at `at`) and whose hard suspension falls on or
    before `until`."""
    overdue = open_with_balance().filter(customer_id=OuterRef("customer_id"), due_on__lt=day)
    latest = day_start(until - timedelta(days=cfg.hard_suspend_after_days - 1))
    return (
        ServiceAccount.objects.filter(
            status=ServiceAccount.Status.SUSPENDED, suspension="soft", suspended_at__lt=latest
        )
        .annotate(has_overdue=Exists(overdue))
        .filter(
            Q(has_overdue=True)
            | Q(
                Q(expires_at__isnull=True) | Q(expires_at__lt=at or day_start(day)),
                plan__billing=Billing.PREPAID,
            )
        )
    )


def _harden(day: date, cfg: BillingSettings, report: DunningReport, actor, at) -> None:
    rows = list(
        soft_suspended_due(day, cfg, day, at).order_by("id").values_list("id", "customer_id")
    )
    held = held_customers(day, {customer_id for _, customer_id in rows})
    for account_id, customer_id in rows:
        if customer_id in held:
            report.held += 1
            continue
        try:
            if _harden_one(account_id, customer_id, day, cfg, actor, at):
                report.hard += 1
        except Exception as exc:
            log.exception("dunning %s: hard suspension of account %s failed", day, account_id)
            report.errors.append(f"account {account_id}: {exc}"[:300])


def _harden_one(account_id, customer_id, day, cfg, actor, at) -> bool:
    from subscribers import services as subscribers

    with transaction.atomic():
        # The lock a payment takes first (billing.ledger): a suspension never follows
        # a payment it did not see.
        lock_customer(customer_id)
        account = (
            soft_suspended_due(day, cfg, day, at)
            .select_for_update(of=("self",), no_key=True)
            .select_related("plan", "customer")
            .filter(pk=account_id)
            .first()
        )
        if account is None:
            return False  # restored or settled meanwhile
        customer = account.customer
        since = timezone.localtime(account.suspended_at)
        reason = f"unpaid since the soft suspension of {since:%d %b %Y}"
        # Once per soft suspension: a later one (after a restore) may harden again.
        key = f"acct{account.pk}:hard:{since:%Y%m%dT%H%M%S.%f}"
        if not _claim(customer.pk, Step.HARD_SUSPEND, key, day, account=account, detail=reason):
            return False
        subscribers.harden_suspension(account, actor=actor, reason=reason)
        amount = prepaid.to_pay_many([customer.pk], at)[customer.pk]
        messaging.notify(
            customer,
            "suspended_hard",
            {"amount": amount, "paybill": cfg.paybill},
            related=f"account:{account.pk}",
        )
    return True
