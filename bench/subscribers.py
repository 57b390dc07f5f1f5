"""Subscriber figures with 100,000 subscribers in one ISP (schema `bench`):

- importing 10,000 rows through import_subscribers (the first chunk is timed);
- the subscriber list with a search term and a filter, and the customer page:
  p50/p95 latency through the whole middleware stack, and SQL statements per request.

The bench ISP is built once and kept; later runs only measure. BENCH_SUBSCRIBERS
changes the size.
"""

import os
import random
import time

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import tenant_context

from bench.util import N, p95, percentiles, timed
from ispops.staff.models import Branch
from ispops.tenancy.models import Isp
from ispops.tenancy.services import create_isp
from subscribers.demo import FIRST, LAST
from subscribers.imports import import_plans, import_subscribers
from subscribers.models import Customer, NetworkSite

SCHEMA, HOST, OWNER, PASSWORD = "bench", "bench.localhost", "owner@bench.test", "bench-pass-2026"
TARGET = int(os.environ.get("BENCH_SUBSCRIBERS", "100000"))
CHUNK = 10_000
PLANS = """name,price,cycle,download,upload,service,billing
Home 5M,1500,monthly,5M,2M,pppoe,prepaid
Home 10M,2500,monthly,10M,5M,pppoe,prepaid
Fibre 50M,6000,monthly,50M,25M,pppoe,postpaid
Hotspot Daily,50,daily,3M,1M,hotspot,prepaid
"""


def _chunk_csv(start: int, count: int, rng: random.Random) -> str:
    plans = ["Home 5M", "Home 10M", "Fibre 50M", "Hotspot Daily"]
    lines = ["account,name,phone,email,plan,username,password,router,status"]
    for i in range(start, start + count):
        status = rng.choices(["active", "suspended", "lead"], weights=[80, 15, 5])[0]
        lines.append(
            f",{rng.choice(FIRST)} {rng.choice(LAST)},07{i:08d},,"
            f"{rng.choice(plans)},u{i},p{i},,{status}"
        )
    return "\n".join(lines)


def ensure_bench_isp() -> Isp:
    isp = Isp.objects.filter(schema_name=SCHEMA).first()
    if isp is None:
        isp, _ = create_isp(
            schema=SCHEMA, name="Bench ISP", domain=HOST, owner_email=OWNER, owner_password=PASSWORD
        )
    with tenant_context(isp):
        import_plans(PLANS, actor="bench")
        existing = Customer.objects.count()
        rng = random.Random(existing)
        while existing < TARGET:
            count = min(CHUNK, TARGET - existing)
            text = _chunk_csv(existing, count, rng)
            started = time.perf_counter()
            report = import_subscribers(text, actor="bench")
            elapsed = time.perf_counter() - started
            if not report.ok:
                raise SystemExit(f"bench import refused: {report.errors[:3]}")
            print(
                f"import_subscribers {count:,} rows: {elapsed:6.2f} s "
                f"({existing + count:,}/{TARGET:,})",
                flush=True,
            )
            existing += count
        _spread_over_branches_and_sites()
    connection.set_schema_to_public()
    return isp


def _spread_over_branches_and_sites():
    if Branch.objects.exists():
        return
    branches = [Branch.objects.create(name=f"Branch {i}", code=f"b{i}") for i in range(4)]
    sites = [
        NetworkSite.objects.create(
            name=f"Sector {i}", kind="sector", branch=branches[i % 4], capacity=3000
        )
        for i in range(40)
    ]
    with connection.cursor() as cursor:
        # One statement each: give every customer a branch and a site by id.
        cursor.execute(
            "UPDATE subscribers_customer SET branch_id = %s + (id %% 4), site_id = %s + (id %% 40)",
            [branches[0].pk, sites[0].pk],
        )
        cursor.execute("ANALYZE subscribers_customer; ANALYZE subscribers_serviceaccount")


def measure(client, label, urls):
    queries = []

    def get(i):
        with CaptureQueriesContext(connection) as ctx:
            response = client.get(urls[i % len(urls)])
        assert response.status_code == 200, (response.status_code, urls[i % len(urls)])
        queries.append(len(ctx.captured_queries))

    timed(get, n=10)  # warm caches and connections
    queries.clear()
    samples = timed(get)
    print(f"{label:<44} {percentiles(samples)}   SQL max {max(queries)}")
    return p95(samples), max(queries)


def run():
    isp = ensure_bench_isp()
    client = Client(HTTP_HOST=HOST)
    assert client.post("/login/", {"username": OWNER, "password": PASSWORD}).status_code == 302
    with tenant_context(isp):
        total = Customer.objects.count()
        branch = Branch.objects.order_by("id").first()
        ids = list(Customer.objects.order_by("?").values_list("id", flat=True)[:N])
    connection.set_schema_to_public()
    print(f"subscribers in the bench ISP: {total:,}")
    terms = ["wanj", "otieno", "0700001", "kamau", "u4242", "mwende", "chebet", "ouma"]
    list_urls = [f"/subscribers/?q={t}&status=active" for t in terms]
    list_urls += [f"/subscribers/?q={t}&branch={branch.pk}" for t in terms]
    measure(client, "list: search term + filter", list_urls)
    measure(client, "list: filter only (status=suspended)", ["/subscribers/?status=suspended"])
    measure(client, "customer page", [f"/subscribers/{pk}/" for pk in ids])
