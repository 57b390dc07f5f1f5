"""Billing figures with 100,000 active postpaid accounts in one ISP (schema
`bench_billing`, built once and kept):

- a billing run for one day (every account due: 100,000 invoices), accounts per second;
- the same run again (nothing left to bill): what a daily re-run costs;
- a dunning run over them, when billing.dunning exists.
"""

import os
import random
import time
from datetime import date, timedelta

from django.db import connection
from django.db.models import F
from django.utils import timezone
from django_tenants.utils import tenant_context

from billing.models import BillingRun, ChargedPeriod, Invoice
from ispops.tenancy.models import Isp
from ispops.tenancy.services import create_isp
from subscribers.imports import import_plans, import_subscribers
from subscribers.models import ServiceAccount

SCHEMA, HOST = "bench_billing", "bench-billing.localhost"
TARGET = int(os.environ.get("BENCH_POSTPAID", "100000"))
PLANS = """name,price,cycle,download,upload,service,billing
Biz 10M,3000,monthly,10M,5M,pppoe,postpaid
Biz 20M,4500,monthly,20M,10M,pppoe,postpaid
Fibre 50M,6000,monthly,50M,25M,pppoe,postpaid
"""


def ensure_isp() -> Isp:
    isp = Isp.objects.filter(schema_name=SCHEMA).first()
    if isp is None:
        isp, _ = create_isp(
            schema=SCHEMA,
            name="Bench Billing",
            domain=HOST,
            owner_email="owner@bench-billing.test",
            owner_password="bench-pass-2026",
        )
    with tenant_context(isp):
        import_plans(PLANS, actor="bench")
        have = ServiceAccount.objects.count()
        rng = random.Random(have)
        while have < TARGET:
            count = min(10_000, TARGET - have)
            lines = ["account,name,phone,email,plan,username,password,router,status"]
            for i in range(have, have + count):
                plan = rng.choice(["Biz 10M", "Biz 20M", "Fibre 50M"])
                lines.append(f",Business {i},07{i:08d},,{plan},b{i},p{i},,active")
            started = time.perf_counter()
            report = import_subscribers("\n".join(lines), actor="bench")
            if not report.ok:
                raise SystemExit(f"bench import refused: {report.errors[:3]}")
            have += count
            print(
                f"  built {have:,}/{TARGET:,} accounts ({time.perf_counter() - started:.1f} s)",
                flush=True,
            )
    connection.set_schema_to_public()
    return isp


def run():
    isp = ensure_isp()
    with tenant_context(isp):
        # Each bench starts from no charges for the billed day: bill a new day each time.
        last = (
            ChargedPeriod.objects.order_by("-period_end")
            .values_list("period_end", flat=True)
            .first()
        )
        day = (last + timedelta(days=1)) if last else timezone.localdate()
        ServiceAccount.objects.update(
            activated_at=timezone.make_aware(
                timezone.datetime.combine(day, timezone.datetime.min.time())
            )
        )
        # Earlier bench months count as settled, so dunning sees this month's invoices.
        Invoice.objects.filter(status="open").update(status="paid", amount_paid=F("total"))
        accounts = ServiceAccount.objects.filter(status="active").count()
        started = time.perf_counter()
        run_ = _billing(day)
        elapsed = time.perf_counter() - started
        print(
            f"billing run {day} over {accounts:,} postpaid accounts: {elapsed:6.1f} s, "
            f"{accounts / elapsed:,.0f} accounts/s, {run_.invoice_count:,} invoices, "
            f"KES {run_.amount:,}"
        )
        started = time.perf_counter()
        again = _billing(day)
        elapsed = time.perf_counter() - started
        print(f"same day again: {elapsed:6.1f} s, {again.invoice_count} invoices")
        try:
            from billing import dunning
        except ImportError:
            print("dunning: not built yet")
        else:
            # Day 0: nothing to do; due date - 1: a reminder for every invoice.
            for offset in (0, 6):
                started = time.perf_counter()
                report = dunning.run_dunning(day + timedelta(days=offset), actor="bench")
                elapsed = time.perf_counter() - started
                print(
                    f"dunning run {day + timedelta(days=offset)}: {elapsed:6.1f} s, "
                    f"{accounts / elapsed:,.0f} accounts/s, {report}"
                )
    connection.set_schema_to_public()


def _billing(day: date) -> BillingRun:
    from billing.services import run_billing

    return run_billing(day, actor="bench", chunk=1000)
