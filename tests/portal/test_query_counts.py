"""The SQL statements behind the portal's home and pay page are a fixed handful, pinned
here (python -m bench portal prints the same figures against 100,000 subscribers): a
customer with three services, a year of bills and payments costs what one with a single
fresh service does. A change that adds a query per row fails here first."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tenants.utils import tenant_context

from billing import services as billing
from payments import services as payments
from subscribers import services as subscribers
from tests.portal.conftest import sign_in

PHONE = "254712345601"
# Session, tenant and visit included (a prepaid customer: the pay page prices 1-12
# periods ahead); python -m bench portal prints the counts on 100,000 subscribers.
PINNED = {"/my/": 13, "/my/pay/": 17}


def _count(client, path) -> int:
    client.get(path)  # the first request of a process fills caches; measure the next
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(path).status_code == 200
    connection.set_schema_to_public()
    return len(ctx.captured_queries)


@pytest.mark.parametrize("path", list(PINNED))
def test_a_portal_page_costs_the_same_few_queries_however_much_history(
    alpha, make_customer, plan, path
):
    customer = make_customer("0712345601")
    client = alpha.client()
    sign_in(alpha, client, PHONE)
    connection.set_schema_to_public()
    fresh = _count(client, path)

    with tenant_context(alpha.isp):
        for n in range(2):
            subscribers.create_service_account(
                actor="t",
                customer=customer,
                plan=plan,
                username=f"extra{n}{customer.pk}",
                password="pw",
                status="active",
            )
        now = timezone.now()
        for month in range(12):
            at = now - timedelta(days=30 * (12 - month))
            billing.charge_once(customer, Decimal("2500"), actor="t", reason="Month", at=at)
            payments.record_manual_payment(
                customer, method="cash", amount=Decimal("2500"), reference=f"Q{month}", actor="t"
            )
    busy = _count(client, path)
    assert busy == fresh == PINNED[path], (path, fresh, busy)
