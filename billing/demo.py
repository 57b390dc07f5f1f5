"""Demo billing history (seed_demo): the ISP's invoice identity, then the months since
its first subscriber joined (subscribers.demo dates them back) lived in order through
billing's own services at the moments things happened:

- the daily billing run at 01:05 of every day (postpaid invoices), and most invoices
  paid by M-Pesa a few days after they were issued;
- every monthly prepaid account paying each term just before it ended (the payment
  buys the next term), short prepaid plans (hotspot) paying their first and latest;
- a few plan changes at a renewal;
- about one account in six stopping to pay: suspended when its term ran out (prepaid)
  or its invoice was weeks overdue (postpaid); a third of those pay again days later
  or weeks later (restored by the payment, as billing restores a settled account;
  after a month it counts as churn, then reactivation), and a few others
  are terminated.

Nothing is dated after now: a step due later than now is simply not taken (an invoice
issued last week may still be open). Deterministic; run once (kept if there is a
ledger already)."""

import heapq
import itertools
import random
from datetime import datetime, time, timedelta
from decimal import Decimal

from django.db.models import F
from django.utils import timezone

from billing import services
from billing.models import BillingSettings, Invoice, LedgerEntry
from payments import demo as payments_demo
from subscribers import services as subscribers
from subscribers.models import Plan, ServiceAccount

ACTOR = "seed_demo"
# Share of accounts that stop paying at some point, and how many of those leave.
LAPSE_SHARE, TERMINATED = 0.18, 8
PLAN_CHANGE_SHARE = 0.2
# Share of suspended accounts (not to be terminated) that pay again and come back.
COMEBACK_SHARE = 0.35
# The nightly billing run's time of day (settings.CELERY_BEAT_SCHEDULE "daily-billing").
RUN_AT = time(1, 5)


def seed(out=None) -> None:
    say = out or (lambda text: None)
    cfg = BillingSettings.load()
    if not cfg.legal_name:
        cfg.legal_name = "Demo Fibre & Wireless Ltd"
        cfg.address = "Langata Road, Nairobi\nP.O. Box 12345-00100"
        cfg.kra_pin = "P051234567X"
        cfg.paybill = "174379"  # the Daraja simulator's sandbox shortcode
        cfg.phone = "0709 000 000"
        cfg.email = "billing@demo.ispops.local"
        cfg.save()
    if LedgerEntry.objects.exists():
        return
    story = Story(random.Random(2027), timezone.now(), cfg)
    story.plan()
    story.run()
    # Each was told to its customer when issued; beat must not send months of them now.
    Invoice.objects.filter(announced_at__isnull=True).update(announced_at=F("created_at"))
    say(
        f"  {Invoice.objects.count()} invoices, {story.payments} payments,"
        f" {story.changes} plan changes, {story.suspended} suspended"
        f" ({story.restored} paid again),"
        f" {story.terminated} terminated over {story.days} days"
    )


class Story:
    """The events of the demo's past, taken in the order they happened (a heap of
    (moment, sequence, step, args))."""

    def __init__(self, rng: random.Random, now: datetime, cfg: BillingSettings):
        self.rng, self.now, self.cfg = rng, now, cfg
        self.events: list = []
        self.last = now  # the moment of the step being taken
        self.seq = itertools.count()
        self.payments = self.changes = self.suspended = self.terminated = self.days = 0
        self.restored = 0
        self.lapse_at: dict[int, datetime] = {}  # account id -> when it stops paying
        self.change_at: dict[int, int] = {}  # account id -> the renewal it changes plan at
        self.to_terminate: set[int] = set()
        self.monthly = {
            p.pk: p
            for p in Plan.objects.filter(billing="prepaid", cycle="monthly", service="pppoe")
        }

    def at(self, moment: datetime, step, *args) -> None:
        if moment < self.now:
            heapq.heappush(self.events, (moment, next(self.seq), step, args))

    def plan(self) -> None:
        accounts = list(
            ServiceAccount.objects.filter(status="active", activated_at__isnull=False)
            .select_related("plan")
            .order_by("id")
        )
        if not accounts:
            return
        for account in accounts:
            joined = account.activated_at
            if self.rng.random() < LAPSE_SHARE:
                # Stops paying a third of the way into its time with us, or later.
                span = (self.now - joined).total_seconds()
                self.lapse_at[account.pk] = joined + timedelta(
                    seconds=span * self.rng.uniform(0.3, 0.95)
                )
                if len(self.to_terminate) < TERMINATED and self.rng.random() < 0.5:
                    self.to_terminate.add(account.pk)
            if account.plan.billing == "prepaid":
                if account.plan_id in self.monthly and self.rng.random() < PLAN_CHANGE_SHARE:
                    self.change_at[account.pk] = self.rng.randint(1, 3)
                self.at(joined + timedelta(minutes=5), self.pay_term, account.pk, 0)
            elif account.pk in self.lapse_at:
                # Weeks overdue: the dunning run suspends the account.
                stop = self.lapse_at[account.pk]
                self.at(stop + timedelta(days=self.rng.randint(35, 50)), self.suspend, account.pk)
        first = timezone.localdate(min(a.activated_at for a in accounts))
        today = timezone.localdate(self.now)
        self.days = (today - first).days
        for n in range(self.days + 1):
            day = first + timedelta(days=n)
            self.at(timezone.make_aware(datetime.combine(day, RUN_AT)), self.bill, day)

    def run(self) -> None:
        while self.events:
            self.last, _, step, args = heapq.heappop(self.events)
            step(*args)

    # --- the steps -------------------------------------------------------------------

    def bill(self, day) -> None:
        """The nightly billing run of `day`; each new invoice paid days later (unless
        the account has stopped paying)."""
        moment = timezone.make_aware(datetime.combine(day, RUN_AT))
        run = services.run_billing(day, actor=ACTOR, at=moment)
        for invoice in Invoice.objects.filter(billing_run=run).select_related("customer"):
            paid = moment + timedelta(days=self.rng.randint(1, 12), hours=self.rng.randint(0, 14))
            account_id = invoice.service_account_id
            if account_id in self.lapse_at and paid > self.lapse_at[account_id]:
                continue
            self.at(paid, self.pay, invoice.customer_id, invoice.pk)

    def pay(self, customer_id: int, invoice_id: int) -> None:
        invoice = Invoice.objects.select_related("customer").get(pk=invoice_id)
        if invoice.status != Invoice.Status.OPEN or invoice.outstanding <= 0:
            return
        payments_demo.mpesa_paid(self.rng, invoice.customer, invoice.outstanding, self.last)
        self.payments += 1

    def pay_term(self, account_id: int, renewal: int, comeback: bool = False) -> None:
        """A prepaid account pays for its next term just before the present one ends
        (renewal 0: the first term, the day it joined)."""
        account = ServiceAccount.objects.select_related("plan", "customer").get(pk=account_id)
        if account.status != "active" and not (comeback and account.status == "suspended"):
            return
        moment = self.last
        if self.change_at.get(account_id) == renewal:
            self._change_plan(account, moment - timedelta(minutes=1))
            account.refresh_from_db()
        cost = services.term_cost(account.plan, moment)
        payments_demo.mpesa_paid(self.rng, account.customer, cost, moment)
        self.payments += 1
        account.refresh_from_db(fields=["expires_at"])
        end = account.expires_at
        lapse = self.lapse_at.get(account_id)
        if account.plan.cycle == "monthly":
            following = end - timedelta(hours=self.rng.randint(1, 60))
        else:
            # Hotspot plans of hours, days or a week: the latest purchase, shortly
            # before now (their purchases in between are not told).
            period = end - moment
            following = max(end, self.now - period * self.rng.uniform(0.2, 0.9))
        if lapse is not None and following > lapse:
            # Stopped paying: the term runs out, grace passes, service is suspended.
            grace = timedelta(days=self.cfg.grace_days)
            if account.plan.cycle in ("hourly", "daily"):
                grace = timedelta(hours=self.cfg.grace_hours)
            self.at(end + grace, self.suspend, account_id)
        else:
            self.at(following, self.pay_term, account_id, renewal + 1)

    def _change_plan(self, account, moment: datetime) -> None:
        plans = sorted(self.monthly.values(), key=lambda p: p.price)
        here = next((i for i, p in enumerate(plans) if p.pk == account.plan_id), None)
        if here is None or len(plans) < 2:
            return
        # Mostly upgrades; a downgrade when already at the top.
        to = plans[here + 1] if here + 1 < len(plans) else plans[here - 1]
        try:
            subscribers.change_plan(account, to, actor=ACTOR, at=moment)
        except subscribers.SubscriberError:
            return
        self.changes += 1

    def suspend(self, account_id: int) -> None:
        account = ServiceAccount.objects.get(pk=account_id)
        if account.status != "active":
            return
        moment = self.last
        subscribers.change_status(
            account, "suspended", actor=ACTOR, reason="Did not pay (demo)", at=moment
        )
        self.suspended += 1
        if account_id in self.to_terminate:
            self.at(moment + timedelta(days=self.rng.randint(7, 25)), self.terminate, account_id)
        elif self.rng.random() < COMEBACK_SHARE:
            self.lapse_at.pop(account_id, None)
            self.at(moment + timedelta(days=self.rng.randint(3, 75)), self.come_back, account_id)

    def come_back(self, account_id: int) -> None:
        """A suspended account pays what it owes (postpaid) or a new term (prepaid):
        billing restores it with the payment."""
        account = ServiceAccount.objects.select_related("plan", "customer").get(pk=account_id)
        if account.status != "suspended":
            return
        if account.plan.billing == "prepaid":
            self.pay_term(account_id, 99, comeback=True)
        else:
            owed = sum(
                (
                    i.outstanding
                    for i in Invoice.objects.filter(customer=account.customer_id, status="open")
                ),
                Decimal(0),
            )
            if owed > 0:
                payments_demo.mpesa_paid(self.rng, account.customer, owed, self.last)
                self.payments += 1
        account.refresh_from_db(fields=["status"])
        self.restored += account.status == "active"

    def terminate(self, account_id: int) -> None:
        account = ServiceAccount.objects.get(pk=account_id)
        subscribers.change_status(
            account, "terminated", actor=ACTOR, reason="Moved away (demo)", at=self.last
        )
        self.terminated += 1
