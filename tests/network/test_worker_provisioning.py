"""The whole way: activation commits, a real Celery worker picks the router job up and
the secret appears on the emulator, with no call from the test in between."""

import uuid

import pytest
from django.db import connection
from django_tenants.utils import tenant_context

from network.models import Router, RouterJob
from network.services import add_router
from subscribers import services as subscribers
from subscribers.models import Customer, Plan
from tests.conftest import wait_for
from tests.network.conftest import EMULATOR_PASSWORD, EMULATOR_USER

pytestmark = [pytest.mark.committed, pytest.mark.worker]


def test_activation_reaches_the_router_through_a_real_worker(
    tenants, django_db_blocker, celery_worker_process, emulator
):
    alpha = tenants["alpha"]
    tag = uuid.uuid4().hex[:8]
    with django_db_blocker.unblock(), tenant_context(alpha.isp):
        router = add_router(
            actor="test",
            name=f"worker-{tag}",
            host="127.0.0.1",
            port=emulator.port,
            username=EMULATOR_USER,
            password=EMULATOR_PASSWORD,
        )
        plan = Plan.objects.create(
            name=f"Worker {tag}", price=1000, download_kbps=8000, upload_kbps=4000
        )
        customer = subscribers.create_customer(
            actor="test", name=f"Worker {tag}", phone="0712345670"
        )
        account = subscribers.create_service_account(
            actor="test",
            customer=customer,
            plan=plan,
            username=f"w{tag}",
            password="pw",
            router=router,
            status="installing",
        )
        try:
            subscribers.activate(account, actor="test")
            appeared = wait_for(
                lambda: any(r.get("name") == f"w{tag}" for r in emulator.rows("/ppp/secret")),
                seconds=30,
            )
            assert appeared, "the worker did not provision the secret"
            assert wait_for(
                lambda: RouterJob.objects.get(service_account=account).state == "done", seconds=30
            )
            subscribers.change_status(account, "suspended", actor="test", reason="Unpaid")
            assert wait_for(
                lambda: (
                    next(r for r in emulator.rows("/ppp/secret") if r.get("name") == f"w{tag}")[
                        "disabled"
                    ]
                    == "true"
                ),
                seconds=30,
            )
        finally:
            RouterJob.objects.filter(router=router).delete()
            customer.service_accounts.all().delete()
            Customer.objects.filter(pk=customer.pk).delete()
            Plan.objects.filter(pk=plan.pk).delete()
            Router.objects.filter(pk=router.pk).delete()
    connection.set_schema_to_public()
