"""Aged receivables at any date, and one action on a bucket. What invoices still wanted
at the end of a day (billing.services.outstanding_on, the one place that works it out),
in buckets of days past due on that day: not yet due, 1-30, 31-60, 61-90, 91-120, over
120; by customer, by site (with its sub-sites) and by branch."""

from collections import defaultdict
from datetime import date
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone

from billing import services as billing
from billing.models import BillingSettings
from ispops import audit
from ispops.messaging import services as messaging
from ispops.staff.models import Branch
from payments import services as payments
from payments.models import MpesaSettings, StkRequest
from portal.pay import ONE_PROMPT
from reports.collections import roll_up, site_tree
from reports.models import BucketClaim
from subscribers.models import Customer

ZERO = billing.ZERO
BUCKETS = (
    ("current", "Not yet due"),
    ("1-30", "1-30 days"),
    ("31-60", "31-60 days"),
    ("61-90", "61-90 days"),
    ("91-120", "91-120 days"),
    ("120+", "Over 120 days"),
)
_LIMITS = ((0, "current"), (30, "1-30"), (60, "31-60"), (90, "61-90"), (120, "91-120"))


def bucket_of(late: int) -> str:
    for limit, key in _LIMITS:
        if late <= limit:
            return key
    return "120+"


def empty() -> dict:
    return dict.fromkeys((key for key, _ in BUCKETS), ZERO)


def by_customer(day: date, customers=None) -> dict[int, dict]:
    """{customer id: {bucket: amount}} of customers owing on `day`."""
    out = defaultdict(empty)
    for cid, due_on, amount in billing.outstanding_on(day, customers):
        out[cid][bucket_of((day - due_on).days)] += amount
    return dict(out)


def report(day: date, customers=None) -> dict:
    """Totals per bucket, and rows by customer, branch and site (sub-sites rolled up)."""
    per_customer = by_customer(day, customers)
    info = {
        c["id"]: c
        for c in Customer.objects.filter(pk__in=list(per_customer)).values(
            "id", "name", "account", "phone", "branch_id", "site_id"
        )
    }
    totals = empty()
    branches = defaultdict(empty)
    sites = defaultdict(empty)
    for cid, buckets in per_customer.items():
        for key, amount in buckets.items():
            totals[key] += amount
            branches[info[cid]["branch_id"]][key] += amount
            sites[info[cid]["site_id"]][key] += amount
    parents, site_names = site_tree()
    rolled = {key: roll_up({s: b[key] for s, b in sites.items()}, parents) for key, _ in BUCKETS}
    site_ids = set().union(*(r.keys() for r in rolled.values())) if rolled else set()
    branch_names = dict(Branch.objects.values_list("id", "name"))

    def row(name, buckets, **extra):
        return {"name": name, **extra, **buckets, "total": sum(buckets.values(), ZERO)}

    customers_rows = sorted(
        (
            row(info[cid]["name"], b, id=cid, account=info[cid]["account"])
            for cid, b in per_customer.items()
        ),
        key=lambda r: (-r["total"], r["name"]),
    )
    return {
        "day": day,
        "totals": totals,
        "total": sum(totals.values(), ZERO),
        "customers": customers_rows,
        "branches": sorted(
            (row(branch_names.get(pk, "No branch"), b, id=pk) for pk, b in branches.items()),
            key=lambda r: -r["total"],
        ),
        "sites": sorted(
            (
                row(
                    site_names.get(pk, "No site"),
                    {key: rolled[key].get(pk, ZERO) for key, _ in BUCKETS},
                    id=pk,
                )
                for pk in site_ids
            ),
            key=lambda r: -r["total"],
        ),
    }


def in_bucket(day: date, bucket: str, customers=None) -> dict[int, Decimal]:
    """The customers with money in `bucket` on `day`, and how much."""
    return {cid: b[bucket] for cid, b in by_customer(day, customers).items() if b[bucket] > 0}


# --- one action on a bucket -----------------------------------------------------------------

Action = BucketClaim.Action


def claim(customer_id: int, action: str, day: date, bucket: str, amount, by: str) -> bool:
    """Take the customer's claim for `action` today; False when already taken."""
    try:
        with transaction.atomic():
            row = BucketClaim.objects.create(
                customer_id=customer_id,
                action=action,
                on_date=day,
                bucket=bucket,
                amount=amount,
                by=by[:200],
            )
    except IntegrityError:
        return False
    audit.record(
        row, "create", {"action": action, "bucket": bucket, "amount": str(amount)}, actor=by
    )
    return True


def act_on_bucket(bucket: str, action: str, *, actor: str, at, customers=None) -> dict:
    """Send a payment reminder (the overdue reminder template, or the before-due one for
    the bucket not yet due; opt-outs honoured by messaging) or an STK prompt for what the
    customer must pay now (billing.to_pay; none while one is still on their phone) to each
    customer in `bucket` today who has not had the same action today."""
    day = timezone.localdate(at)
    owing = in_bucket(day, bucket, customers)
    dues = billing.dues_many(list(owing), day)
    people = Customer.objects.in_bulk(list(owing))
    sent = skipped = 0
    items = []
    cfg = BillingSettings.load()
    for cid in sorted(owing):
        due = dues[cid]
        amount = billing.to_pay(people[cid], at) if action == Action.STK else due.owed
        if amount <= 0 or not claim(cid, action, day, bucket, amount, actor):
            skipped += 1
            continue
        if action == Action.REMINDER:
            side = "before" if bucket == "current" else "after"
            items.append(
                (
                    people[cid],
                    f"payment_reminder_{side}",
                    {"amount": amount, "due_on": due.oldest_due, "paybill": cfg.paybill},
                    f"aging:{bucket}:{day}",
                )
            )
            sent += 1
        elif _prompt(people[cid], amount, actor, at):
            sent += 1
        else:
            skipped += 1
    if items:
        messaging.notify_many(items)
    return {"sent": sent, "skipped": skipped}


def _prompt(customer, amount, actor, at) -> bool:
    """An STK prompt to the customer's phone, unless one is still pending for them."""
    if not customer.phone or not MpesaSettings.load().configured:
        return False
    if StkRequest.objects.filter(
        customer=customer, state=StkRequest.State.PENDING, created_at__gte=at - ONE_PROMPT
    ).exists():
        return False
    try:
        payments.start_stk_push(customer, phone=customer.phone, amount=amount, actor=actor)
    except payments.PaymentError:
        return False
    return True
