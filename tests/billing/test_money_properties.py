"""What nobody picked: random sequences of events on a subscriber (plan changes across
modes and cycles, suspensions, restorations, termination, add-ons, discounts, price
changes, voids, payments, reversals, billing and dunning runs on random days, VAT
inclusive or exclusive), driven through the real services at frozen times, with the
issue's invariants checked after every step:

1. for every billed period, net charged = the sum over its billable days of each line's
   price x its share of the period (within a cent a line), worked out here day by day,
   independently of the engine;
2. no invoice is credited beyond what it charged;
3. ledger balance = what open invoices still want - unallocated credit (never
   negative), and credit is never left unused beside an unpaid invoice;
4. dunning never suspends a customer with nothing overdue, and suspends (in every
   stretch of service) a postpaid one overdue past grace who was reminded.

`make test` runs the same 300 examples every time (profile "ci", derandomised);
`python -m bench properties` runs the "bench" profile (ISPOPS_HYPOTHESIS_PROFILE=bench):
3,000 new random histories each run.
"""

import contextlib
import os
from collections import defaultdict
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal

import time_machine
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing import dunning, engine, periods
from billing import services as billing
from billing.ledger import credit_left
from billing.models import (
    BillingSettings,
    ChargedPeriod,
    DunningHold,
    Invoice,
    InvoiceLine,
    PlanPrice,
    TimelineEntry,
    Waiver,
)
from subscribers import services as subscribers
from subscribers.models import AddOn, Discount, Plan

D = Decimal
CENT = D("0.01")
START = date(2026, 1, 1)

# `make test` draws the same 300 histories every run, so CI passes or fails on the code,
# not on the draw; `python -m bench properties` draws 3,000 new ones each time, which is
# where new defects are looked for (two were found that way, then pinned as cases).
settings.register_profile(
    "ci",
    max_examples=300,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.register_profile(
    "bench",
    max_examples=3000,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
PROFILE = os.environ.get("ISPOPS_HYPOTHESIS_PROFILE", "ci")

PLANS = {
    "home10": ("3100", "postpaid", "monthly"),
    "home5": ("1550", "postpaid", "monthly"),
    "biz20": ("6200", "postpaid", "monthly"),
    "week": ("800", "postpaid", "weekly"),
    "pre5": ("1000", "prepaid", "monthly"),
}

actions = st.one_of(
    st.just(("bill",)),
    st.just(("dun",)),
    st.just(("suspend",)),
    st.just(("restore",)),
    st.just(("terminate",)),
    st.tuples(st.just("plan"), st.sampled_from(sorted(PLANS))),
    st.tuples(st.just("addon"), st.sampled_from(["300", "500", "999.99"])),
    st.just(("end_addon",)),
    st.tuples(
        st.just("discount"),
        st.sampled_from(["percent", "fixed"]),
        st.sampled_from(["10", "50", "100", "400"]),
        st.integers(0, 40),
    ),
    st.tuples(st.just("price"), st.sampled_from(sorted(PLANS)), st.sampled_from(["1200", "4650"])),
    st.tuples(st.just("void"), st.integers(0, 5)),
    st.tuples(st.just("pay"), st.sampled_from(["500", "1100", "3100", "3596", "7000"])),
    st.just(("reverse",)),
)
steps = st.lists(st.tuples(st.integers(0, 9), actions), min_size=1, max_size=12)


def moment(day: date, hour: int) -> datetime:
    return timezone.make_aware(datetime.combine(day, time(hour)))


@settings(parent=settings.get_profile(PROFILE))
@given(steps=steps, inclusive=st.booleans(), start_plan=st.sampled_from(sorted(PLANS)))
def test_random_histories_keep_the_money_invariants(in_alpha, steps, inclusive, start_plan):
    with transaction.atomic():
        World(inclusive, start_plan).play(steps)
        transaction.set_rollback(True)


class World:
    """One subscriber on one ISP, and what the test did to them."""

    def __init__(self, inclusive: bool, start_plan: str):
        BillingSettings.load()
        BillingSettings.objects.filter(pk=1).update(vat_inclusive=inclusive)
        self.cfg = BillingSettings.load()
        self.plans = {
            key: Plan.objects.create(
                name=f"P-{key}",
                price=D(price),
                billing=mode,
                cycle=cycle,
                download_kbps=1,
                upload_kbps=1,
            )
            for key, (price, mode, cycle) in PLANS.items()
        }
        self.day = START
        with time_machine.travel(moment(START, 9), tick=False):
            customer = subscribers.create_customer(actor="t", name="Prop", phone="0712345678")
            self.account = subscribers.create_service_account(
                actor="t",
                customer=customer,
                plan=self.plans[start_plan],
                username="prop",
                status="active",
            )
        # The timeline its creation implies, stored, so the oracle reads it too.
        engine.ensure_timeline(self.account)
        self.customer = customer
        self.payments = []
        self.receipts = 0

    def play(self, steps):
        for advance, action in steps:
            self.day += timedelta(days=advance)
            with time_machine.travel(moment(self.day, 10), tick=False):
                self.act(action)
            self.check(action)

    # --- events -------------------------------------------------------------------------

    def act(self, action):
        account = self.account
        account.refresh_from_db()
        name = action[0]
        if name == "bill":
            billing.run_billing(self.day, actor="t")
        elif name == "dun":
            self.before_dun = self.dues_snapshot()
            self.dun_report = dunning.run_dunning(self.day, actor="t")
        elif name in ("suspend", "restore", "terminate"):
            to = {"suspend": "suspended", "restore": "active", "terminate": "terminated"}[name]
            if to in subscribers.allowed_moves(account.status):
                subscribers.change_status(account, to, actor="t", reason="prop")
        elif account.status == "terminated":
            return
        elif name == "plan":
            # An ISP that makes upgrades wait refuses some changes: a refusal changes nothing.
            with contextlib.suppress(subscribers.SubscriberError):
                subscribers.change_plan(account, self.plans[action[1]], actor="t")
        elif name == "addon":
            subscribers.add_addon(
                account, actor="t", kind="ott", name="TV", price=D(action[1]), starts_on=self.day
            )
        elif name == "end_addon":
            addon = account.addons.filter(ends_on__isnull=True).first()
            if addon is not None:
                subscribers.end_addon(addon, actor="t")
        elif name == "discount":
            _, kind, value, days = action
            value = min(D(value), D(100)) if kind == "percent" else D(value)
            subscribers.add_discount(
                account,
                actor="t",
                kind=kind,
                value=value,
                reason="prop",
                starts_on=self.day,
                ends_on=self.day + timedelta(days=days),
            )
        elif name == "price":
            # From tomorrow at the earliest: a period keeps the price it began with.
            billing.set_plan_price(
                self.plans[action[1]],
                D(action[2]),
                effective_on=self.day + timedelta(days=1),
                actor="t",
            )
        elif name == "void":
            invoices = list(
                Invoice.objects.invoices()
                .filter(customer=self.customer)
                .exclude(status=Invoice.Status.VOID)
                .order_by("id")
            )
            if invoices:
                billing.void_invoice(invoices[action[1] % len(invoices)], actor="t", reason="prop")
        elif name == "pay":
            self.receipts += 1
            entry = billing.record_payment(
                self.customer, D(action[1]), actor="t", reference=f"R{self.receipts}"
            )
            self.payments.append(entry)
        elif name == "reverse" and self.payments:
            billing.reverse_payment_entry(self.payments.pop(), actor="t", reason="prop")

    # --- invariants ---------------------------------------------------------------------

    def check(self, action):
        self.check_periods()
        self.check_credit_notes()
        self.check_ledger()
        if action[0] == "dun":
            self.check_dunning()

    def check_periods(self):
        oracle = Oracle(self.account, self.cfg)
        for cp in ChargedPeriod.objects.filter(service_account=self.account):
            charged = InvoiceLine.objects.filter(
                service_account=self.account, billing_period=cp.period_start
            ).aggregate(s=Sum("amount"))["s"] or D("0.00")
            want, lines = oracle.period_cost(cp.period_start, cp.period_end)
            assert abs(charged - want) <= CENT * max(lines, 1), (
                f"period {cp.period_start}..{cp.period_end}: charged {charged}, fair {want}"
            )

    def check_credit_notes(self):
        for invoice in Invoice.objects.invoices().filter(customer=self.customer):
            credited = -(invoice.credit_notes.aggregate(s=Sum("total"))["s"] or D("0.00"))
            assert credited <= invoice.total, f"{invoice.number} credited {credited}"

    def check_ledger(self):
        left = credit_left(self.customer.pk)
        assert left >= 0, f"invoices hold {-left} more than was paid"
        unpaid = Invoice.objects.unpaid().filter(customer=self.customer).exists()
        assert not (left > 0 and unpaid), "credit left unused beside an unpaid invoice"
        dues = billing.dues(self.customer, self.day)
        assert billing.customer_balance(self.customer) == dues.owed - dues.credit

    def dues_snapshot(self):
        self.account.refresh_from_db()
        return (self.account.status, billing.dues(self.customer, self.day).overdue)

    def check_dunning(self):
        status_before, overdue_before = self.before_dun
        self.account.refresh_from_db()
        if status_before == "active" and self.account.status == "suspended":
            expired = (
                self.account.plan.billing == "prepaid"
                and self.account.expires_at is not None
                and self.account.expires_at < moment(self.day, 10)
            )
            assert overdue_before > 0 or expired, "suspended with nothing overdue"
        if self.account.status == "active" and self.account.plan.billing == "postpaid":
            cutoff = self.day - timedelta(days=max(self.cfg.grace_days, 1))
            reminded_and_late = Invoice.objects.unpaid().filter(
                customer=self.customer,
                service_account=self.account,
                due_on__lte=cutoff,
                pk__in=dunning.DunningAction.objects.filter(
                    step="reminder", on_date__lt=self.day
                ).values("invoice_id"),
            )
            held = DunningHold.objects.filter(customer=self.customer).exists()
            assert held or not reminded_and_late.exists(), "overdue past grace, not suspended"


class Oracle:
    """What a period should cost, day by day, from the stored timeline, waivers, add-ons,
    discounts and prices: written apart from billing.timeline on purpose."""

    def __init__(self, account, cfg):
        self.entries = list(
            TimelineEntry.objects.filter(service_account=account).order_by("starts_on", "id")
        )
        self.waived = list(Waiver.objects.filter(service_account=account))
        self.addons = list(AddOn.objects.filter(service_account=account))
        self.discounts = list(Discount.objects.filter(service_account=account))
        self.prices = defaultdict(list)
        for row in PlanPrice.objects.order_by("effective_on"):
            self.prices[row.plan_id].append((row.effective_on, row.price))
        self.current = dict(Plan.objects.values_list("id", "price"))
        self.account = account
        self.cfg = cfg

    def state(self, day):
        found = None
        for entry in self.entries:
            if entry.starts_on <= day:
                found = entry
        return found

    def in_service(self, day, cycle):
        e = self.state(day)
        return (
            e is not None
            and e.status in ("active", "suspended")
            and (e.mode == "postpaid" and e.cycle == cycle)
        )

    def billable(self, day):
        e = self.state(day)
        if e is None or not e.billable:
            return False
        return not any(w.starts_on <= day < w.ends_on for w in self.waived)

    def price(self, plan_id, day):
        found = None
        for effective_on, price in self.prices.get(plan_id, ()):
            if effective_on <= day:
                found = price
        if found is None:
            rows = self.prices.get(plan_id)
            found = rows[0][1] if rows else self.current[plan_id]
        return found

    def period_cost(self, start: date, last: date):
        e = self.state(start)
        cycle = e.cycle
        anchor = start
        while self.in_service(anchor - timedelta(days=1), cycle):
            anchor -= timedelta(days=1)
        fixed = (
            self.cfg.fixed_day if self.cfg.anchor == "fixed_day" and cycle == "monthly" else None
        )
        full = periods.full_period_days(cycle, start, anchor, fixed)
        exact = defaultdict(Decimal)
        plan_days = []
        day = start
        while day <= last:
            if self.billable(day):
                plan_id = self.state(day).plan_id
                begun = day
                while begun > start and self.state(begun - timedelta(days=1)).plan_id == plan_id:
                    begun -= timedelta(days=1)
                per_day = self.price(plan_id, max(start, begun)) / full
                exact[f"plan:{plan_id}"] += per_day
                plan_days.append((day, per_day))
                for a in self.addons:
                    if a.starts_on <= day and (a.ends_on is None or day <= a.ends_on):
                        exact[f"addon:{a.pk}"] += a.price / full
            day += timedelta(days=1)
        # Discounts, oldest first, never take more than the plan's amount on a day.
        left = dict(plan_days)
        for d in sorted(self.discounts, key=lambda d: d.pk):
            covered = [(day, p) for day, p in plan_days if d.starts_on <= day <= d.ends_on]
            if not covered:
                continue
            taken = Decimal(0)
            for day, p in covered:
                wanted = p * d.value / 100 if d.kind == "percent" else d.value / full
                take = min(wanted, left[day])
                left[day] -= take
                taken += take
            exact[f"discount:{d.pk}"] = -taken
        total = sum((v.quantize(CENT, rounding=ROUND_HALF_UP) for v in exact.values()), D("0.00"))
        return total, len(exact)
