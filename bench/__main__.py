"""`python -m bench`: foundation figures on the development database.

- creating one ISP (schema + migrations + owner), the cost every new tenant pays;
- staff home page, login and /healthz latency through the full middleware stack
  (tenant routing, session, roles, audit), in-process, p50/p95 over N requests.
"""

import os
import statistics
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ispops.settings")
django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402

from ispops.tenancy.management.commands.seed_demo import (  # noqa: E402
    DEMO_PASSWORD,
    DEMO_STAFF,
)
from ispops.tenancy.models import Isp  # noqa: E402
from ispops.tenancy.services import create_isp  # noqa: E402

N = int(os.environ.get("BENCH_N", "200"))


def percentiles(samples_ms):
    ordered = sorted(samples_ms)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"p50 {statistics.median(ordered):7.2f} ms   p95 {p95:7.2f} ms   (n={len(ordered)})"


def timed(fn, n=N):
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


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


def main():
    demo_host = f"demo.{settings.PLATFORM_DOMAIN}"
    if not Isp.objects.filter(schema_name="demo").exists():
        raise SystemExit("bench: no demo ISP; run `make seed` first")

    print(f"create_isp (schema, migrations, owner): {percentiles(bench_create_isp())}")

    client = Client(HTTP_HOST=demo_host)
    owner = DEMO_STAFF[0][0]

    def login():
        client.logout()
        response = client.post("/login/", {"username": owner, "password": DEMO_PASSWORD})
        assert response.status_code == 302, response.status_code

    print(f"login POST:                             {percentiles(timed(login, n=min(N, 50)))}")
    login()

    def home():
        assert client.get("/").status_code == 200

    print(f"staff home page GET:                    {percentiles(timed(home))}")

    health = Client(HTTP_HOST=demo_host)

    def healthz():
        assert health.get("/healthz").status_code == 200

    print(f"/healthz GET (db, redis, worker ping):  {percentiles(timed(healthz, n=min(N, 20)))}")


if __name__ == "__main__":
    main()
