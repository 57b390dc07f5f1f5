"""Report figures with 100,000 subscribers in one ISP (schema `bench_reports`, built once
and kept, like bench_billing but its own: the billing bench resets its ISP's timeline):

- one day's subscription snapshot of all of them (reports.snapshots.take): time, SQL
  statements, services and MRR;
- 365 days of snapshot history built from the timeline the bench scripts (activations
  before and during the year, plan changes, suspensions that end in a reactivation or a
  termination, terminations), with reports.snapshots.take_days: the accounts and
  timelines read once, each day claimed, computed and written by one COPY in its own
  transaction (the same code fill_missing runs). The history is kept; BENCH_REBUILD=1
  builds it again.

- a year of bills and payments written once from that history (each month's postpaid
  services in service on its first day invoiced at their MRR plus VAT, most paid), so
  the owner's home has money to add up;
- the 12-month MRR report (/reports/mrr/) and the owner's home (/) through the real
  request path (the test client: middleware, view, template), as the owner and as a
  branch-limited admin: p50/p95 over REPEAT requests once the nightly run has kept the
  movement, their SQL statement counts (pinned in tests/reports/test_mrr.py and
  test_home.py), and the first request that works the 12 months out.

`history_ready(isp)` returns the ISP with its history in place; other timings
(HISTORY_BENCHES) run after it against the same ISP.
"""

import math
import os
import random
import time
from collections.abc import Callable
from datetime import date, timedelta

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tenants.utils import tenant_context

from bench.isps import ensure_bench_isp
from billing.models import Invoice, LedgerEntry, TimelineEntry
from billing.services import day_start
from ispops.staff.models import Branch, Role, User
from ispops.tenancy.models import Isp
from reports import movement, snapshots
from reports.models import MovementFigures, Snapshot, SnapshotDay
from subscribers.models import Customer, Plan, ServiceAccount

SCHEMA, HOST = "bench_reports", "bench-reports.localhost"
TARGET = int(os.environ.get("BENCH_REPORT_SUBSCRIBERS", "100000"))
HISTORY_DAYS = 365
REPEAT = int(os.environ.get("BENCH_REPEAT", "30"))
BRANCHES = 4
SCRIPT = "bench script"
PLANS = """name,price,cycle,download,upload,service,billing
Home 5M,1500,monthly,5M,2M,pppoe,postpaid
Home 10M,2500,monthly,10M,5M,pppoe,postpaid
Biz 20M,4500,monthly,20M,10M,pppoe,postpaid
Fibre 50M,6000,monthly,50M,25M,pppoe,prepaid
Week 5M,450,weekly,5M,2M,pppoe,prepaid
"""
# Timings another bench adds: each is called as fn(isp, first_day, last_day) once the
# history is in place, inside the ISP's schema.
HISTORY_BENCHES: list[Callable[[Isp, date, date], None]] = []


def ensure_isp() -> Isp:
    """The bench ISP with TARGET active subscribers (imported the way an ISP would)."""
    names = [line.split(",")[0] for line in PLANS.splitlines()[1:]]
    return ensure_bench_isp(
        schema=SCHEMA, host=HOST, name="Bench Reports", plans=PLANS, target=TARGET,
        row=lambda i, rng: f",Home {i},07{i:08d},,{rng.choice(names)},r{i},p{i},,active",
    )  # fmt: skip


def _script(first: date, last: date) -> None:
    """Every account's timeline, scripted (seeded, so the same each build): written in
    one COPY, replacing what the import implied; accounts' statuses follow it."""
    rng = random.Random(15)
    plans = list(Plan.objects.values_list("id", "billing", "cycle"))
    span = (last - first).days
    entries, final = [], {}
    for pk in ServiceAccount.objects.order_by("pk").values_list("pk", flat=True):
        plan = rng.choice(plans)
        # Three in four were subscribers before the year began; the rest joined in it.
        if rng.random() < 0.75:
            on = first - timedelta(days=rng.randint(1, 300))
        else:
            on = first + timedelta(days=rng.randint(0, span))
        steps = [(on, "active", plan)]
        after = (last - on).days
        if after > 2:
            if rng.random() < 0.10:  # an upgrade or a downgrade
                steps.append((on + timedelta(days=rng.randint(1, after)), "active",
                              rng.choice(plans)))  # fmt: skip
            roll = rng.random()
            if roll < 0.12:  # suspended 3-60 days, then back (60 %) or gone
                s = on + timedelta(days=rng.randint(1, after))
                steps.append((s, "suspended", steps[-1][2]))
                end = s + timedelta(days=rng.randint(3, 60))
                steps.append((end, "active" if rng.random() < 0.6 else "terminated", steps[-1][2]))
            elif roll < 0.16:  # terminated
                steps.append((on + timedelta(days=rng.randint(1, after)), "terminated",
                              steps[-1][2]))  # fmt: skip
        steps.sort(key=lambda step: step[0])
        for day, status, (plan_id, mode, cycle) in steps:
            billable = mode == "postpaid" and status == "active"
            entries.append((pk, day, day_start(day), status, plan_id, mode, cycle, billable))
        final[pk] = (steps[0][0], *steps[-1])
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {TimelineEntry._meta.db_table}")
    columns = "service_account_id, starts_on, at, status, plan_id, mode, cycle, billable, reason"
    sql = f"COPY {TimelineEntry._meta.db_table} ({columns}) FROM STDIN"
    with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        for row in entries:
            copy.write_row((*row, SCRIPT))
    with connection.cursor() as cursor:
        # The accounts as the script leaves them (their plan, status and dates).
        cursor.execute("CREATE TEMP TABLE bench_final (id int, plan_id int, status text, "
                       "since timestamptz, activated timestamptz)")  # fmt: skip
        with cursor.cursor.copy("COPY bench_final FROM STDIN") as copy:
            for pk, (began, day, status, plan) in final.items():
                copy.write_row((pk, plan[0], status, day_start(day), day_start(began)))
        cursor.execute(
            f"UPDATE {ServiceAccount._meta.db_table} a SET plan_id = f.plan_id, "
            "status = f.status, "
            "suspended_at = CASE WHEN f.status = 'suspended' THEN f.since END, "
            "terminated_at = CASE WHEN f.status = 'terminated' THEN f.since END, "
            "activated_at = f.activated "
            "FROM bench_final f WHERE a.id = f.id"
        )
        cursor.execute("DROP TABLE bench_final")
        cursor.execute(f"ANALYZE {TimelineEntry._meta.db_table}")
        cursor.execute(f"ANALYZE {ServiceAccount._meta.db_table}")


def _history_window(today: date) -> tuple[date, date]:
    return today - timedelta(days=HISTORY_DAYS), today - timedelta(days=1)


def history_ready(isp: Isp) -> tuple[date, date]:
    """Make sure the ISP has its scripted timeline and HISTORY_DAYS of snapshots up to
    yesterday (building what is missing, timed); returns (first day, last day)."""
    now = timezone.now()
    first, last = _history_window(timezone.localdate(now))
    with tenant_context(isp):
        scripted = TimelineEntry.objects.filter(reason=SCRIPT).exists()
        if not scripted or os.environ.get("BENCH_REBUILD"):
            started = time.perf_counter()
            with connection.cursor() as cursor:
                cursor.execute(f"TRUNCATE {Snapshot._meta.db_table}, {SnapshotDay._meta.db_table}")
            _spread_over_branches()
            _script(first, last)
            print(f"scripted timeline for {ServiceAccount.objects.count():,} subscribers: "
                  f"{time.perf_counter() - started:.1f} s", flush=True)  # fmt: skip
        have = set(SnapshotDay.objects.values_list("day", flat=True))
        days = [first + timedelta(days=n) for n in range(HISTORY_DAYS)]
        missing = [d for d in days if d not in have]
        if missing:
            started = time.perf_counter()
            taken = snapshots.take_days(missing, as_of=now)
            elapsed = time.perf_counter() - started
            rows = sum(s.services for s in taken)
            print(f"history: {len(taken)} days, {rows:,} rows built in {elapsed:.1f} s "
                  f"({rows / elapsed:,.0f} rows/s; take_days: one load, a COPY a day)")  # fmt: skip
        else:
            print(f"history: {HISTORY_DAYS} days {first}..{last} already built (BENCH_REBUILD=1)")
    connection.set_schema_to_public()
    return first, last


def _one_day(isp: Isp) -> None:
    """Time one day's snapshot as the nightly run takes it: yesterday, taken again each
    run (the bench's own history: its rows are deleted first)."""
    now = timezone.now()
    day = timezone.localdate(now) - timedelta(days=1)
    with tenant_context(isp):
        with connection.cursor() as cursor:
            for model in (Snapshot, SnapshotDay):
                cursor.execute(f"DELETE FROM {model._meta.db_table} WHERE day = %s", [day])
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            snap = snapshots.take(day, as_of=now)
            elapsed = time.perf_counter() - started
        print(f"snapshot of one day ({day}): {snap.services:,} services in service of "
              f"{ServiceAccount.objects.count():,}, MRR {snap.mrr:,}, {elapsed:.2f} s, "
              f"{len(queries)} SQL statements", flush=True)  # fmt: skip
    connection.set_schema_to_public()


# Bills: each month's invoices from the history, paid by this share (percent) of
# customers; the month before this one less, this month's least (not yet due).
_BILLS_SQL = """
WITH months AS (
    SELECT m::date AS first, (m + interval '1 month' - interval '1 day')::date AS last,
           CASE WHEN m >= date_trunc('month', %(today)s::date) THEN 25
                WHEN m >= date_trunc('month', %(today)s::date) - interval '1 month' THEN 60
                ELSE 92 END AS paid_pct
    FROM generate_series(date_trunc('month', %(first)s::date) + interval '1 month',
                         date_trunc('month', %(today)s::date), interval '1 month') m
)
INSERT INTO {invoice} (number, kind, customer_id, service_account_id, period_start,
    period_end, issued_on, due_on, status, subtotal, vat, total, amount_paid,
    amount_credited, vat_rate, vat_inclusive, created_at, void_reason, reason)
SELECT 'BR-' || s.service_account_id || '-' || to_char(m.first, 'YYYYMM'), 'invoice',
       s.customer_id, s.service_account_id, m.first, m.last, m.first, m.first + 14,
       CASE WHEN paid THEN 'paid' ELSE 'open' END, s.mrr, round(s.mrr * 0.16, 2),
       round(s.mrr * 1.16, 2), CASE WHEN paid THEN round(s.mrr * 1.16, 2) ELSE 0 END, 0,
       16, false, m.first, '', %(reason)s
FROM months m
JOIN {snapshot} s ON s.day = m.first AND s.status = 'active' AND s.mrr > 0
JOIN {plan} p ON p.id = s.plan_id AND p.billing = 'postpaid'
CROSS JOIN LATERAL (SELECT (s.service_account_id * 7 + extract(month from m.first)::int)
                           %% 100 < m.paid_pct AS paid) x
"""
_LEDGER_SQL = """
INSERT INTO {ledger} (kind, amount, description, reference, at, actor_label, customer_id,
                      invoice_id, service_account_id)
SELECT 'charge', i.total, 'Invoice ' || i.number, '', i.created_at, 'bench', i.customer_id,
       i.id, i.service_account_id
FROM {invoice} i WHERE i.reason = %(reason)s
UNION ALL
SELECT 'payment', -i.total, 'Payment', 'BRP' || i.id,
       i.created_at + (i.id %% 20) * interval '1 day' + interval '9 hours', 'bench',
       i.customer_id, NULL, NULL
FROM {invoice} i WHERE i.reason = %(reason)s AND i.status = 'paid'
"""


def bills_ready(isp: Isp, first: date) -> None:
    """A year of bills and payments from the history (once)."""
    with tenant_context(isp):
        reason = "bench history"
        if Invoice.objects.filter(reason=reason).exists():
            # The ledger refuses changes (a trigger), so bills are written once; the
            # history a rebuild scripts again is the same (seeded), so they still fit it.
            print("bills: already written")
            return
        started = time.perf_counter()
        tables = {
            "invoice": Invoice._meta.db_table,
            "ledger": LedgerEntry._meta.db_table,
            "snapshot": Snapshot._meta.db_table,
            "plan": Plan._meta.db_table,
        }
        params = {"first": first, "today": timezone.localdate(), "reason": reason}
        with connection.cursor() as cursor:
            cursor.execute(_BILLS_SQL.format(**tables), params)
            cursor.execute(_LEDGER_SQL.format(**tables), params)
            cursor.execute(f"ANALYZE {tables['invoice']}")
            cursor.execute(f"ANALYZE {tables['ledger']}")
        print(f"bills: {Invoice.objects.filter(reason=reason).count():,} invoices, "
              f"{LedgerEntry.objects.count():,} ledger entries in "
              f"{time.perf_counter() - started:.1f} s", flush=True)  # fmt: skip
    connection.set_schema_to_public()


def _branches() -> list[Branch]:
    branches = list(Branch.objects.order_by("pk")[:BRANCHES])
    while len(branches) < BRANCHES:
        n = len(branches)
        branches.append(Branch.objects.create(name=f"Region {n}", code=f"region-{n}"))
    return branches


def _spread_over_branches() -> None:
    """The customers spread over BRANCHES branches by id (before the history is taken:
    snapshot rows keep the branch of their day)."""
    ids = [b.pk for b in _branches()]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Customer._meta.db_table} SET branch_id = (%s::bigint[])[id %% %s + 1]",
            [ids, len(ids)],
        )


def _timed(client: Client, url: str) -> tuple[list[float], int]:
    client.get(url)  # sessions, settings made on first read
    times = []
    for _ in range(REPEAT):
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"{url}: HTTP {response.status_code}")
    return sorted(times), len(queries)


def _pages(isp: Isp) -> None:
    """The 12-month MRR report and the owner's home, as the owner and a branch admin."""
    today = SnapshotDay.objects.order_by("-day").values_list("day", flat=True).first()
    branch = _branches()[0]
    admin, _ = User.objects.get_or_create(
        email="region-admin@bench-reports.test",
        defaults={"role": Role.ADMIN, "full_name": "Region admin"},
    )
    admin.branches.set([branch])
    owner = User.objects.filter(role=Role.OWNER).first()
    MovementFigures.objects.all().delete()
    started = time.perf_counter()
    spans = movement.periods(movement.MONTH, today, 12)
    movement.movements(spans, today=today)
    print(f"12 months worked out from the snapshots (first request, whole ISP): "
          f"{(time.perf_counter() - started) * 1000:,.0f} ms", flush=True)  # fmt: skip
    started = time.perf_counter()
    movement.work_out_current(today)
    print(f"nightly work_out_current (12 months and 12 weeks, ISP and every branch): "
          f"{time.perf_counter() - started:.1f} s", flush=True)  # fmt: skip
    host = isp.get_primary_domain().domain
    for who, user in (("owner", owner), ("branch admin", admin)):
        client = Client(HTTP_HOST=host)
        client.force_login(user)
        for label, url in (("12-month MRR report", "/reports/mrr/"), ("owner's home", "/")):
            times, count = _timed(client, url)
            p50, p95 = times[len(times) // 2], times[math.ceil(len(times) * 0.95) - 1]
            verdict = "PASS" if p95 < 500 else "FAIL"
            print(f"{label} ({who}): p50 {p50:.0f} ms, p95 {p95:.0f} ms over {REPEAT}, "
                  f"{count} SQL statements; {verdict} against 500 ms", flush=True)  # fmt: skip


def run():
    isp = ensure_isp()
    # The script first, so the one-day snapshot reads the scripted timeline.
    first, last = history_ready(isp)
    bills_ready(isp, first)
    _one_day(isp)
    with tenant_context(isp):
        _pages(isp)
    connection.set_schema_to_public()
    for bench in HISTORY_BENCHES:
        with tenant_context(isp):
            bench(isp, first, last)
        connection.set_schema_to_public()
