"""A bench ISP built once and kept: created if missing, its plans imported, then
subscribers imported the way an ISP would (the CSV import, 10,000 a batch) until it has
`target` service accounts. The billing and reports benches each keep their own."""

import random
import time
from collections.abc import Callable

from django.db import connection
from django_tenants.utils import tenant_context

from ispops.tenancy.models import Isp
from ispops.tenancy.services import create_isp
from subscribers.imports import import_plans, import_subscribers
from subscribers.models import ServiceAccount

HEADER = "account,name,phone,email,plan,username,password,router,status"
BATCH = 10_000


def ensure_bench_isp(
    *, schema: str, host: str, name: str, plans: str, target: int,
    row: Callable[[int, random.Random], str],
) -> Isp:  # fmt: skip
    """The ISP `schema` with `target` accounts; `row(i, rng)` is subscriber i's CSV line."""
    isp = Isp.objects.filter(schema_name=schema).first()
    if isp is None:
        slug = schema.replace("_", "-")
        isp, _ = create_isp(
            schema=schema,
            name=name,
            domain=host,
            owner_email=f"owner@{slug}.test",
            owner_password="bench-pass-2026",
        )
    with tenant_context(isp):
        import_plans(plans, actor="bench")
        have = ServiceAccount.objects.count()
        rng = random.Random(have)
        while have < target:
            count = min(BATCH, target - have)
            lines = [HEADER, *(row(i, rng) for i in range(have, have + count))]
            started = time.perf_counter()
            report = import_subscribers("\n".join(lines), actor="bench")
            if not report.ok:
                raise SystemExit(f"bench import refused: {report.errors[:3]}")
            have += count
            print(f"  built {have:,}/{target:,} subscribers "
                  f"({time.perf_counter() - started:.1f} s)", flush=True)  # fmt: skip
    connection.set_schema_to_public()
    return isp
