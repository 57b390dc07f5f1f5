"""Billing figures with 100,000 active postpaid accounts in one ISP (schema
`bench_billing`, built once and kept):

- a billing run for one day (every account due: 100,000 invoices), accounts per second;
- the same run again (nothing left to bill): what a daily re-run costs;
- dunning runs over them: a day with nothing to do, a day with a reminder for each,
  and a day past the grace on which BENCH_SUSPEND (10,000) of them are suspended.
"""

import os
import time
from datetime import date, timedelta

from django.db import connection
from django.db.models import F
from django.utils import timezone
from django_tenants.utils import tenant_context

from bench.isps import ensure_bench_isp
from billing import dunning
from billing.models import BillingRun, ChargedPeriod, Invoice, TimelineEntry
from billing.services import day_start, run_billing
from ispops.tenancy.models import Isp
from subscribers.models import ServiceAccount

SCHEMA, HOST = "bench_billing", "bench-billing.localhost"
TARGET = int(os.environ.get("BENCH_POSTPAID", "100000"))
SUSPEND = int(os.environ.get("BENCH_SUSPEND", "10000"))
PLANS = """name,price,cycle,download,upload,service,billing
Biz 10M,3000,monthly,10M,5M,pppoe,postpaid
Biz 20M,4500,monthly,20M,10M,pppoe,postpaid
Fibre 50M,6000,monthly,50M,25M,pppoe,postpaid
"""


def ensure_isp() -> Isp:
    return ensure_bench_isp(
        schema=SCHEMA, host=HOST, name="Bench Billing", plans=PLANS, target=TARGET,
        row=lambda i, rng: (f",Business {i},07{i:08d},,"
                            f"{rng.choice(['Biz 10M', 'Biz 20M', 'Fibre 50M'])},b{i},p{i},,active"),
    )  # fmt: skip


def run():
    isp = ensure_isp()
    with tenant_context(isp):
        day = _fresh_start()
        accounts = ServiceAccount.objects.filter(status="active").count()
        started = time.perf_counter()
        run_ = _billing(day)
        elapsed = time.perf_counter() - started
        _analyze()
        print(
            f"billing run {day} over {accounts:,} postpaid accounts: {elapsed:6.1f} s, "
            f"{accounts / elapsed:,.0f} accounts/s, {run_.invoice_count:,} invoices, "
            f"KES {run_.amount:,}"
        )
        started = time.perf_counter()
        again = _billing(day)
        elapsed = time.perf_counter() - started
        print(f"same day again: {elapsed:6.1f} s, {again.invoice_count} invoices")
        # Day 0: nothing to do; due date - 1: a reminder for every invoice.
        for offset in (0, 6):
            _dunning(day + timedelta(days=offset), accounts)
        # All but SUSPEND pay; past the grace, dunning suspends the rest (each credited
        # for the unused days of its period: charges paused while suspended).
        unpaid = list(
            Invoice.objects.unpaid().order_by("id").values_list("id", flat=True)[:SUSPEND]
        )
        Invoice.objects.unpaid().exclude(pk__in=unpaid).update(
            status="paid", amount_paid=F("total")
        )
        report = _dunning(day + timedelta(days=11), accounts)
        print(f"  suspended {report.soft:,} accounts ({report.errors[:1] or 'no errors'})")
    connection.set_schema_to_public()


def _fresh_start() -> date:
    """A day after everything billed so far, with every account active since then, on
    the timeline its dates imply (the bench's own accounts: its history is reset)."""
    last = (
        ChargedPeriod.objects.order_by("-period_end").values_list("period_end", flat=True).first()
    )
    day = (last + timedelta(days=1)) if last else timezone.localdate()
    TimelineEntry.objects.all().delete()
    ServiceAccount.objects.update(
        status="active", suspension="", activated_at=day_start(day), suspended_at=None
    )
    # Earlier bench months count as settled, so dunning sees this month's invoices.
    Invoice.objects.unpaid().update(status="paid", amount_paid=F("total") - F("amount_credited"))
    _analyze()
    return day


def _analyze() -> None:
    """Fresh planner statistics after a bulk change, as autovacuum keeps them in service
    within a minute or so (without, the planner scans every invoice per customer batch)."""
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def _billing(day: date) -> BillingRun:
    return run_billing(day, actor="bench", at=day_start(day) + timedelta(hours=1), chunk=1000)


def _dunning(day: date, accounts: int):
    started = time.perf_counter()
    report = dunning.run_dunning(day, actor="bench", at=day_start(day) + timedelta(hours=8))
    elapsed = time.perf_counter() - started
    print(f"dunning run {day}: {elapsed:6.1f} s, {accounts / elapsed:,.0f} accounts/s, {report}")
    return report
