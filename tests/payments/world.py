"""The payments test world: a committed ISP of its own ("paytest") whose M-Pesa settings point
at a Daraja simulator on an ephemeral port, with its callback URLs registered there and
public URL on the session's live server; a RouterOS emulator it provisions to.

Crediting and restoring cross real processes (live server thread, Celery worker), so
these rows are committed; the ISP is used by the payments tests only, and every test
makes its own subscribers."""

import uuid
from dataclasses import dataclass

from django.db import connection
from django_tenants.utils import tenant_context

from network.services import add_router
from payments import services
from payments.simulator import DarajaSimulator
from payments.simulator.server import SANDBOX_PASSKEY
from subscribers import services as subscribers
from subscribers.models import Plan
from tests.conftest import Tenant, _make_tenant, wait_for  # noqa: F401 (used by the tests)

SHORTCODE = "174379"
PAYER = "254712345678"


@dataclass
class PayWorld:
    tenant: Tenant
    sim: DarajaSimulator
    emulator: object
    router: object
    prepaid: Plan
    postpaid: Plan
    port: int

    @property
    def isp(self):
        return self.tenant.isp

    @property
    def base_url(self) -> str:
        return f"http://{self.tenant.host}:{self.port}"


def make_pay_world(django_db_blocker, live_server_url):
    """Build it (the `pay_world` fixture in tests/conftest.py calls this once)."""
    from network.emulator import RouterOSEmulator

    sim = DarajaSimulator(port=0).start()
    emulator = RouterOSEmulator(port=0, users={"admin": "router-pass-1"}).start()
    with django_db_blocker.unblock():
        tenant = _make_tenant("paytest", "Pay Test Net")
        with tenant_context(tenant.isp):
            router = add_router(
                actor="test",
                name="pay-core",
                host="127.0.0.1",
                port=emulator.port,
                username="admin",
                password="router-pass-1",
            )
            prepaid = Plan.objects.create(
                name="Home 5M prepaid",
                price=1500,
                billing="prepaid",
                download_kbps=5000,
                upload_kbps=2000,
            )
            postpaid = Plan.objects.create(
                name="Biz 10M postpaid",
                price=3000,
                billing="postpaid",
                download_kbps=10000,
                upload_kbps=5000,
            )
            services.configure(
                actor="test",
                base_url=sim.base_url,
                shortcode=SHORTCODE,
                kind="paybill",
                consumer_key="ck",
                consumer_secret="cs",
                passkey=SANDBOX_PASSKEY,
                public_url=f"http://{tenant.host}:{live_server_url}",
            )
            services.register_c2b_urls(actor="test")
        connection.set_schema_to_public()
    return PayWorld(tenant, sim, emulator, router, prepaid, postpaid, live_server_url)


def new_subscriber(world: PayWorld, *, plan=None, mobile: str = ""):
    """An active subscriber on the emulator's router (call inside the ISP's schema)."""
    tag = uuid.uuid4().hex[:6]
    customer = subscribers.create_customer(
        actor="test", name=f"Payer {tag}", phone=mobile or f"0712{int(tag, 16) % 10**6:06d}"
    )
    account = subscribers.create_service_account(
        actor="test",
        customer=customer,
        plan=plan or world.prepaid,
        username=f"p{tag}",
        password="pw",
        router=world.router,
        status="installing",
    )
    subscribers.activate(account, actor="test")
    return account


def secret_disabled(world: PayWorld, username: str):
    for row in world.emulator.rows("/ppp/secret"):
        if row.get("name") == username:
            return row.get("disabled") == "true"
    return None
