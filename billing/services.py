"""Billing operations other apps call. Each takes the moment it acts for (`at`, or a day
for runs) from its caller; nothing below reads the wall clock.

- The ledger and what is owed (billing.ledger): `customer_balance`, `dues`, `allocate`.
- Events on a service account (`on_status_change`, `on_plan_change`, `on_terms_change`)
  append to its timeline and let the engine (billing.engine) post the difference.
- `run_billing` for a day, in chunks, safe to repeat and to run beside dunning.
- Payments (`record_payment`: allocation, prepaid terms, restoration), reversals, voids,
  manual credit notes and one-off charges, plan price changes.
"""

import logging
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import F, OuterRef, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from billing import documents, engine, prepaid
from billing.documents import Draft
from billing.ledger import (  # noqa: F401 (the billing API other apps use)
    ZERO,
    BillingError,
    Dues,
    Kind,
    allocate,
    balances,
    credits_many,
    customer_balance,
    dues,
    dues_many,
    holding,
    lock_customer,
    record_entry,
    statement,
    unallocate_excess,
    unallocated_credit,
)
from billing.models import (
    BillingRun,
    BillingSettings,
    ChargedPeriod,
    Invoice,
    LedgerEntry,
    PlanPrice,
    Waiver,
)
from ispops import audit
from subscribers.models import Billing, Customer, ServiceAccount

log = logging.getLogger(__name__)


# --- time ---------------------------------------------------------------------------------


def day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def moment_for(day: date, now: datetime) -> datetime:
    """The moment a run "for `day`" acts at: now for today, the day's last moment for a
    day gone by. A day to come is refused: nothing may be done ahead of time."""
    today = timezone.localdate(now)
    if day > today:
        raise BillingError(f"{day.isoformat()} is in the future: give today or a past day")
    if day == today:
        return now
    return day_start(day + timedelta(days=1)) - timedelta(microseconds=1)


# --- events on an account ----------------------------------------------------------------

_REASONS = {
    "suspended": "Suspended",
    "terminated": "Terminated",
    "active": "Service restored",
}


def on_status_change(account, current: str, to: str, *, actor, at: datetime) -> None:
    """What billing does when a service account moves (subscribers calls it in the same
    transaction, holding the customer and account locks, `account` read with its plan
    under the lock): the timeline grows, a prepaid account in service gets an expiry,
    and the engine posts what the change is worth."""
    reason = _REASONS.get(to, to)
    if to == "active" and current != "suspended":
        reason = "Activated"
    engine.append_entry(account, at=at, status=to, plan=account.plan, reason=reason)
    if to in ("active", "suspended"):
        prepaid.ensure_expiry(account, at)
    _settle(account, at, actor=actor, reason=reason)


def on_suspended_many(accounts, *, actor, at: datetime) -> None:
    """`on_status_change` for many accounts suspended at once (a bulk suspension;
    `accounts` as they were before it, with their plan): the timelines grow in one
    insert, and the engine recomputes their billed periods together."""
    engine.append_entries(accounts, at=at, status="suspended", reason=_REASONS["suspended"])
    docs = engine.settle_accounts(
        accounts, at, actor=actor, since=timezone.localdate(at), reason=_REASONS["suspended"]
    )
    _use_credit({doc.customer_id for doc in docs})


def on_plan_change(account, old_plan, new_plan, *, actor, at: datetime) -> None:
    """A plan change from the day of `at`: the timeline grows; postpaid periods are
    recomputed (the engine), prepaid terms adjusted (billing.prepaid)."""
    engine.ensure_timeline(account, plan=old_plan)
    engine.append_entry(
        account,
        at=at,
        status=account.status,
        plan=new_plan,
        reason=f"Plan {old_plan.name} to {new_plan.name}",
    )
    if account.status in ("active", "suspended") and (
        old_plan.billing == "prepaid" or new_plan.billing == "prepaid"
    ):
        prepaid.on_plan_change(account, old_plan, new_plan, at, actor=actor)
    _settle(account, at, actor=actor, reason=f"Plan change {old_plan.name} to {new_plan.name}")


def on_terms_change(account, since: date, *, actor, at: datetime, reason: str) -> None:
    """An add-on or discount began, ended or changed from `since`: recompute."""
    _settle(account, at, actor=actor, reason=reason, since=since)


def _settle(account, at, *, actor, reason, since=None, first=None) -> list[Invoice]:
    has_postpaid = (
        account.plan.billing == "postpaid"
        or ChargedPeriod.objects.filter(service_account_id=account.pk).exists()
    )
    if not has_postpaid:
        return []
    since = since or timezone.localdate(at)
    docs = engine.settle_account(account, at, actor=actor, since=since, reason=reason, first=first)
    if docs:
        allocate(account.customer)
    return docs


# --- the billing run ---------------------------------------------------------------------


def billable_accounts():
    """Accounts a run may open periods for: in service on a postpaid plan."""
    return ServiceAccount.objects.filter(
        status__in=["active", "suspended"],
        plan__billing=Billing.POSTPAID,
        activated_at__isnull=False,
    )


def bill_chunk(account_ids, day: date, *, at: datetime, run=None, actor) -> list[Invoice]:
    """Open the periods due by `day` of these accounts in one transaction holding only
    their account rows (id order) and, last, the numbering row: it never waits for a
    customer row while holding an account, so it cannot close a circle with an event,
    a payment or a dunning run (customer, then account, then numbering). Customers who
    already hold credit have their new invoices paid from it just after, each in a
    transaction of its own (the ledger's order)."""
    with transaction.atomic():
        accounts = list(
            billable_accounts()
            .select_for_update(of=("self",), no_key=True)
            .select_related("plan")
            .defer("password")  # a Fernet decryption per row, and billing never reads it
            .filter(pk__in=account_ids)
            .order_by("id")
        )
        invoices = engine.bill_accounts(accounts, day, as_of=at, run=run, actor=actor)
    _use_credit({invoice.customer_id for invoice in invoices})
    return invoices


def _use_credit(customer_ids) -> None:
    """New invoices are paid from credit the customers already hold: two grouped
    queries find the few who have any."""
    if not customer_ids:
        return
    with_credit = credits_many(customer_ids)
    for customer in Customer.objects.filter(pk__in=list(with_credit)).order_by("id"):
        allocate(customer)


def run_billing(
    day: date, *, actor, at: datetime | None = None, chunk: int = 500, progress=None
) -> BillingRun:
    """The billing run for `day`: every postpaid account's due periods, once. Safe to run
    twice, and twice at once. `at` is the moment it acts for (default: `moment_for`)."""
    at = at or moment_for(day, timezone.now())
    _, label = audit.describe_actor(actor)
    # Accounts whose opened periods already reach past `day` have nothing due: left out
    # in one query, so a re-run of a billed day costs little.
    ids = list(
        billable_accounts()
        .exclude(charged_periods__period_end__gte=day)
        .order_by("id")
        .values_list("id", flat=True)
    )
    run = BillingRun.objects.create(
        run_date=day, total_accounts=len(ids), started_by=label, started_at=at
    )
    for offset in range(0, len(ids), chunk):
        batch = ids[offset : offset + chunk]
        try:
            invoices = bill_chunk(batch, day, at=at, run=run, actor=actor)
        except IntegrityError:
            # Another run opened some of these meanwhile: one account at a time.
            invoices = _one_by_one(batch, day, at, run, actor)
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
    # Its invoices are told to their customers by beat's announce job within a minute
    # (billing.announce), not from here: the run stays as fast as it was.
    run.refresh_from_db()
    return run


def _one_by_one(batch, day, at, run, actor) -> list[Invoice]:
    invoices = []
    for account_id in batch:
        try:
            invoices += bill_chunk([account_id], day, at=at, run=run, actor=actor)
        except IntegrityError:
            continue
        except Exception as exc:
            run.errors.append({"account": account_id, "error": str(exc)[:300]})
    return invoices


# --- payments, reversals, settlement -----------------------------------------------------


def record_payment(
    customer, amount, *, actor, reference: str, description: str = "Payment", at=None
) -> LedgerEntry:
    """A payment received (cash, bank, M-Pesa): on the ledger, settled against the
    oldest open invoices, then buying prepaid terms; the customer restored if now
    settled."""
    at = at or timezone.now()
    with transaction.atomic(), holding(customer.pk):
        entry = record_entry(
            customer,
            Kind.PAYMENT,
            amount,
            actor=actor,
            description=description,
            reference=reference,
            at=at,
        )
        allocate(customer)
        prepaid.buy_terms(customer, at, actor=actor, paid_by=entry)
        restore_if_settled(customer, actor=actor, at=at)
    return entry


def reverse_payment_entry(entry: LedgerEntry, *, actor, reason: str, at=None) -> LedgerEntry:
    """Take a payment back off the ledger (a bounced cheque, money put on the wrong
    customer): an adjustment for the same amount; the prepaid terms it bought are taken
    back; invoices it had settled reopen, newest first, as far as credit no longer
    covers them."""
    if entry is None or entry.kind != Kind.PAYMENT:
        raise BillingError("only a payment can be reversed")
    at = at or timezone.now()
    with transaction.atomic(), holding(entry.customer_id):
        reversal = record_entry(
            entry.customer,
            Kind.ADJUSTMENT,
            -entry.amount,
            actor=actor,
            description=f"Reversal of {entry.reference or 'payment'}: {reason}",
            reference=entry.reference,
            at=at,
        )
        prepaid.take_back(entry, at, actor=actor)
        unallocate_excess(entry.customer)
        allocate(entry.customer)
    return reversal


def is_settled(account, at: datetime) -> bool:
    """Nothing overdue at `at`: a prepaid account's expiry is later and the customer has
    no invoice past due; a postpaid one has no invoice past due."""
    if account.plan.billing == "prepaid" and (
        account.expires_at is None or account.expires_at <= at
    ):
        return False
    return dues(account.customer, timezone.localdate(at)).overdue <= 0


def to_pay(customer, at: datetime) -> Decimal:
    """What the customer must pay at `at` to be settled (billing.prepaid.to_pay_many):
    what the pay page asks for."""
    return prepaid.to_pay_many([customer.pk], at)[customer.pk]


def term_cost(plan, at: datetime) -> Decimal:
    """What one prepaid term of `plan` bought at `at` costs (VAT added where prices
    exclude it): the least a new prepaid customer's first payment must be to be in
    service and paid (subscribers.services.sign_up)."""
    return prepaid.term_cost(plan, timezone.localdate(at), BillingSettings.load())


def restore_if_settled(customer, *, actor, at: datetime | None = None) -> list:
    """Every suspended service account of the customer with nothing overdue goes back
    to active (the router job follows)."""
    from subscribers import services as subscribers

    at = at or timezone.now()
    restored = []
    for account in customer.service_accounts.filter(status="suspended").select_related("plan"):
        if is_settled(account, at):
            subscribers.change_status(
                account, "active", actor=actor, reason="Settled: payment received", at=at
            )
            restored.append(account)
    return restored


# --- voids, credit notes, one-off charges ---------------------------------------------------


def void_invoice(invoice: Invoice, *, actor, reason: str, at=None) -> Invoice | None:
    """Cancel an invoice: it stays, marked void, and credit notes take off what it still
    charges. The days it billed are waived (no run bills them again); a prepaid term it
    bought gives its time back. What was paid on it becomes the customer's credit, and
    an account suspended for it is restored if nothing else is overdue."""
    reason = (reason or "").strip()
    if not reason:
        raise BillingError("say why the invoice is voided")
    at = at or timezone.now()
    with transaction.atomic(), holding(invoice.customer_id):
        locked = Invoice.objects.select_for_update().get(pk=invoice.pk)
        if locked.is_credit_note:
            raise BillingError(f"{locked.number} is a credit note; it cannot be voided")
        if locked.status == Invoice.Status.VOID:
            raise BillingError(f"invoice {locked.number} is already void")
        with audit.acting_as(actor):
            locked.status, locked.voided_at = Invoice.Status.VOID, at
            locked.void_reason = reason[:255]
            locked.save(update_fields=["status", "voided_at", "void_reason"])
        note = _void_effects(locked, at, actor=actor, reason=f"void of {locked.number}: {reason}")
        allocate(locked.customer)
        restore_if_settled(locked.customer, actor=actor, at=at)
    invoice.refresh_from_db()
    return note


def _void_effects(invoice: Invoice, at, *, actor, reason: str):
    cfg = BillingSettings.load()
    engine_lines = list(invoice.lines.filter(billing_period__isnull=False))
    if engine_lines and invoice.service_account_id:
        account = invoice.service_account
        type(account).objects.select_for_update(no_key=True).get(pk=account.pk)
        Waiver.objects.bulk_create(
            [
                Waiver(
                    service_account=account,
                    starts_on=ln.period_start,
                    ends_on=ln.period_end + timedelta(days=1),
                    invoice=invoice,
                    created_at=at,
                )
                for ln in engine_lines
                if ln.period_start and ln.period_end
            ]
        )
        since = min(ln.period_start for ln in engine_lines)
        docs = engine.settle_account(
            account, at, actor=actor, since=since, reason=reason, first=invoice
        )
        return docs[0] if docs else None
    for term in invoice.prepaid_terms.filter(cancelled_at__isnull=True):
        prepaid.cancel_term(term, at, cfg, actor=actor, reason=reason)
        return None
    left = sum((ln.amount for ln in invoice.lines.all()), ZERO) + sum(
        (ln.amount for note in invoice.credit_notes.all() for ln in note.lines.all()), ZERO
    )
    if left <= 0:
        return None
    draft = Draft(
        customer_id=invoice.customer_id,
        account=invoice.service_account,
        lines=[documents.line(kind="credit", description=f"Credit: {reason}", amount=-left)],
        issued_on=timezone.localdate(at),
        due_on=timezone.localdate(at),
        credits=invoice,
        reason=reason,
    )
    return documents.save([draft], cfg, actor=actor, at=at)[0]


def issue_credit_note(customer, amount, *, actor, reason: str, invoice=None, at=None):
    """A credit staff grant: a credit note on `invoice` when one is named (never more
    than it has left), else a numbered credit on the ledger held for the next charges.
    Allocated at once; the customer restored if that settles them."""
    at = at or timezone.now()
    amount = Decimal(amount)
    with transaction.atomic(), holding(customer.pk):
        if invoice is not None:
            cfg = BillingSettings.load()
            draft = Draft(
                customer_id=customer.pk,
                account=invoice.service_account,
                lines=[documents.line(kind="credit", description=reason, amount=-amount)],
                issued_on=timezone.localdate(at),
                due_on=timezone.localdate(at),
                credits=invoice,
                reason=reason,
            )
            result = documents.save([draft], cfg, actor=actor, at=at)[0]
        else:
            number = documents.take_numbers(Invoice.Kind.CREDIT_NOTE, 1)[0]
            result = record_entry(
                customer,
                Kind.CREDIT_NOTE,
                amount,
                actor=actor,
                description=reason,
                reference=number,
                at=at,
            )
        allocate(customer)
        restore_if_settled(customer, actor=actor, at=at)
    return result


def charge_once(customer, amount, *, actor, reason: str, at=None) -> Invoice:
    """A one-off charge (a debit adjustment, a call-out fee): an invoice of one line."""
    at = at or timezone.now()
    cfg = BillingSettings.load()
    day = timezone.localdate(at)
    with transaction.atomic(), holding(customer.pk):
        draft = Draft(
            customer_id=customer.pk,
            account=None,
            lines=[documents.line(kind="other", description=reason, amount=Decimal(amount))],
            issued_on=day,
            due_on=day + timedelta(days=cfg.due_days),
            reason=reason,
        )
        invoice = documents.save([draft], cfg, actor=actor, at=at)[0]
        allocate(customer)
    return invoice


def set_plan_price(
    plan, price, *, effective_on: date, actor, today: date | None = None, before=None
) -> PlanPrice:
    """A new list price from `effective_on`, a day to come (periods that began today
    may be billed already, and a period keeps the price it began with): each account
    pays it from its first period (prepaid: term) starting on or after that day. The
    plan shows the new price at once. `before`: the price until then, when the plan row
    already holds the new one (the plan form saved it)."""
    today = today or timezone.localdate()
    if effective_on <= today:
        raise BillingError(
            f"a new price starts on {today + timedelta(days=1):%d %b %Y} at the earliest: "
            "periods that began today may be billed already"
        )
    with transaction.atomic(), audit.acting_as(actor):
        if not PlanPrice.objects.filter(plan=plan).exists():
            PlanPrice.objects.create(
                plan=plan,
                price=plan.price if before is None else before,
                effective_on=date(2000, 1, 1),
            )
        row, _ = PlanPrice.objects.update_or_create(
            plan=plan, effective_on=effective_on, defaults={"price": price}
        )
        type(plan).objects.filter(pk=plan.pk).update(price=price)
    return row


# --- reports ---------------------------------------------------------------------------------


def overdue_invoices(day: date):
    return Invoice.objects.unpaid().filter(due_on__lt=day)


def aged_debt(day: date, customers=None) -> dict:
    """Outstanding on open invoices by age past due: current, 1-30, 31-60, 61-90, 90+
    (of `customers`, a queryset, when given: a branch-limited view)."""
    buckets = {"current": ZERO, "1-30": ZERO, "31-60": ZERO, "61-90": ZERO, "90+": ZERO}
    invoices = Invoice.objects.unpaid()
    if customers is not None:
        invoices = invoices.filter(customer__in=customers)
    for due_on, left in invoices.annotate(
        left=F("total") - F("amount_paid") - F("amount_credited")
    ).values_list("due_on", "left"):
        late = (day - due_on).days
        for limit, key in ((0, "current"), (30, "1-30"), (60, "31-60"), (90, "61-90")):
            if late <= limit:
                buckets[key] += left
                break
        else:
            buckets["90+"] += left
    return buckets


def outstanding_on(day: date, customers=None) -> list[tuple[int, date, Decimal]]:
    """What invoices still wanted at the end of `day` (a past day too), as (customer id,
    due date, amount), from what the ledger and the documents held then, never from
    today's state of the invoices (amount_paid, status: what came later). Each invoice
    wanted its total less the credit notes written against it by then (a credit note
    settles its own invoice, `documents.settle_credit_notes`); each customer's ledger
    balance then is laid on those from the newest due back, since payments and credit
    held settle the oldest due first (`allocate`). Invoices voided by then want nothing
    (their void's credit notes are on the ledger); one voided later still wanted its
    share. Credit held by a customer owes nothing. `customers`: a queryset to limit it
    to."""
    end = day_start(day + timedelta(days=1))
    entries = LedgerEntry.objects.filter(at__lt=end)
    if customers is not None:
        entries = entries.filter(customer__in=customers)
    owing = {
        cid: total
        for cid, total in entries.values_list("customer_id").annotate(s=Sum("amount")).order_by()
        if total > 0
    }
    credited = (
        Invoice.objects.filter(
            kind=Invoice.Kind.CREDIT_NOTE, credits=OuterRef("pk"), created_at__lt=end
        )
        .values("credits")
        .annotate(s=Sum("total"))
        .values("s")
    )
    invoices = (
        Invoice.objects.invoices()
        .filter(customer_id__in=list(owing), created_at__lt=end, total__gt=0)
        .exclude(status=Invoice.Status.VOID, voided_at__lt=end)
        .annotate(wanted=F("total") + Coalesce(Subquery(credited), ZERO))
        .order_by("customer_id", "-due_on", "-id")
        .values_list("customer_id", "due_on", "wanted")
    )
    out = []
    for cid, due_on, wanted in invoices:
        take = min(owing[cid], wanted)
        if take > 0:
            out.append((cid, due_on, take))
            owing[cid] -= take
    return out
