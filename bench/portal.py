"""Portal figures with 100,000 subscribers in one ISP (the `bench` schema of
bench.subscribers): the portal's home, invoice list and pay page as a signed-in
subscriber sees them, p50/p95 through the whole middleware stack, SQL statements per
request, and the home page's weight (HTML + CSS; the issue's budget is 60 KB).

A sample of customers gets two years of monthly invoices and payments (built once and
kept), so the lists have something to list; the rest of the 100,000 make the tables
the queries must not scan.
"""

import itertools
import time
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.contrib.sessions.backends.db import SessionStore
from django.db import connection
from django.test import Client
from django.utils import timezone
from django_tenants.utils import tenant_context

from bench.subscribers import HOST, ensure_bench_isp, measure
from billing import services as billing
from ispops.staff.access import PORTAL_SESSION_KEY
from payments import services as payments
from payments.models import Payment
from subscribers.models import Customer

SAMPLE = 100  # customers with a history
MONTHS = 24
BUDGET_MS = 150.0
PAGE_BUDGET_BYTES = 60_000


def run():
    isp = ensure_bench_isp()
    with tenant_context(isp):
        total = Customer.objects.count()
        sample = _with_history()
        clients = [_signed_in(customer) for customer in sample]
    connection.set_schema_to_public()
    print(f"subscribers in the bench ISP: {total:,}; {len(sample)} with {MONTHS} months of bills")

    pages = {"home": "/my/", "invoice list": "/my/invoices/", "pay page": "/my/pay/"}
    worst = {}
    for label, url in pages.items():
        worst[label] = _measure_as_many(clients, f"portal {label}", url)
    size = len(clients[0].get("/my/").content)
    print(f"portal home weight (HTML + inline CSS): {size / 1000:.1f} KB (budget 60 KB)")
    over = [label for label, p in worst.items() if p > BUDGET_MS]
    print(f"p95 budget {BUDGET_MS:.0f} ms: {'met' if not over else 'MISSED by ' + ', '.join(over)}")


def _measure_as_many(clients, label: str, url: str) -> float:
    """Each request by the next subscriber in turn (their own session and data)."""

    p95, _ = measure(_Rotating(clients), label, [url])
    return p95


class _Rotating:
    """Looks like one client to bench.subscribers.measure; each get is the next one's."""

    def __init__(self, clients):
        self._next = itertools.cycle(clients)

    def get(self, path):
        return next(self._next).get(path)


def _with_history() -> list:
    """SAMPLE customers on a postpaid plan with MONTHS monthly invoices and payments."""
    sample = list(
        Customer.objects.filter(service_accounts__plan__billing="postpaid", status="active")
        .order_by("id")
        .distinct()[:SAMPLE]
    )
    have = Payment.objects.filter(customer__in=sample, reference__startswith="BENCH").count()
    if have >= len(sample) * MONTHS:
        return sample
    started = time.perf_counter()
    now = timezone.now()
    for n, customer in enumerate(sample, 1):
        if Payment.objects.filter(customer=customer, reference__startswith="BENCH").exists():
            continue
        for month in range(MONTHS, 0, -1):
            at = now - timedelta(days=30 * month)
            billing.charge_once(
                customer, Decimal("6000.00"), actor="bench", reason="Fibre 50M", at=at
            )
            payments.record_manual_payment(
                customer,
                method="cash",
                amount=Decimal("6000.00"),
                reference=f"BENCH{customer.pk}M{month}",
                actor="bench",
            )
        if n % 20 == 0:
            took = time.perf_counter() - started
            print(f"  history {n}/{len(sample)} ({took:.0f} s)", flush=True)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return sample


def _signed_in(customer) -> Client:
    """A client holding the session a code sign-in gives this customer."""
    session = SessionStore()
    session[PORTAL_SESSION_KEY] = {"phone": customer.phone, "customer": customer.pk}
    session.create()
    client = Client(HTTP_HOST=HOST)
    client.cookies[settings.SESSION_COOKIE_NAME] = session.session_key
    return client
