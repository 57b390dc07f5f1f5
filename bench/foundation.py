"""Foundation figures on the development database.

- creating one ISP (schema + migrations + owner), the cost every new tenant pays;
- staff home page, login and /healthz latency through the full middleware stack
  (tenant routing, session, roles, audit), in-process, p50/p95 over N requests.
"""

import os
import time

from django.conf import settings
from django.db import connection
from django.test import Client

from bench.util import N, percentiles, timed
from ispops.tenancy.management.commands.seed_demo import DEMO_PASSWORD, DEMO_STAFF
from ispops.tenancy.models import Isp
from ispops.tenancy.services import create_isp


def bench_create_isp(runs=3):
    samples = []
    for i in range(runs):
        schema = f"bench_{os.getpid()}_{i}"
        start = time.perf_counter()
        isp, _ = create_isp(
            schema=schema,
            name=f"Bench {i}",
            domain=f"{schema.replace('_', '-')}.bench.test",
            owner_email=f"owner{i}@bench.test",
            owner_password="bench-pass-2026",
        )
        samples.append((time.perf_counter() - start) * 1000)
        connection.set_schema_to_public()
        isp.delete(force_drop=True)
    return samples


def run():
    demo_host = f"demo.{settings.PLATFORM_DOMAIN}"
    if not Isp.objects.filter(schema_name="demo").exists():
        raise SystemExit("bench: no demo ISP; run `make seed` first")

    print(f"create_isp (schema, migrations, owner): {percentiles(bench_create_isp())}")

    client = Client(HTTP_HOST=demo_host)
    owner = DEMO_STAFF[0][0]

    def login(_=None):
        client.logout()
        response = client.post("/login/", {"username": owner, "password": DEMO_PASSWORD})
        assert response.status_code == 302, response.status_code

    print(f"login POST:                             {percentiles(timed(login, n=min(N, 50)))}")
    login()

    def home(_=None):
        assert client.get("/").status_code == 200

    print(f"staff home page GET:                    {percentiles(timed(home))}")

    health = Client(HTTP_HOST=demo_host)

    def healthz(_=None):
        assert health.get("/healthz").status_code == 200

    print(f"/healthz GET (db, redis, worker ping):  {percentiles(timed(healthz, n=min(N, 20)))}")
