"""manage.py seed_demo: the demo ISP at demo.localhost and a platform admin.

Safe to run again: what exists is kept. Each app adds its demo data through its own
services (plans, subscribers, routers, invoices, payments); the subscribers joined over
the last six months and billing.demo lives those months in order, so the reports'
snapshots (reports.demo) and the routers' charts (network.demo) have history from the
first start. The logins are printed with --logins (`make run` prints them in its
banner once the site is ready).
"""

import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django_tenants.utils import tenant_context

from billing import demo as billing_demo
from inventory import demo as inventory_demo
from ispops import audit
from ispops.staff.models import Branch, Role, User
from ispops.tenancy.models import Domain, Isp
from ispops.tenancy.services import create_isp
from network import demo as network_demo
from payments import demo as payments_demo
from reports import demo as reports_demo
from subscribers import demo as subscribers_demo
from tickets import demo as tickets_demo

DEMO_SCHEMA = "demo"
DEMO_PASSWORD = "demo-pass-2026"
PLATFORM_EMAIL = "platform@ispops.local"
DEMO_STAFF = [
    ("owner@demo.ispops.local", "Grace Wanjiku", Role.OWNER),
    ("admin@demo.ispops.local", "Brian Otieno", Role.ADMIN),
    ("finance@demo.ispops.local", "Faith Njeri", Role.FINANCE),
    ("support@demo.ispops.local", "Kevin Mwangi", Role.SUPPORT),
    ("tech@demo.ispops.local", "Peter Kamau", Role.TECHNICIAN),
]
DEMO_BRANCHES = [("Nairobi West", "nrb-west"), ("Kitengela", "ktl"), ("Ruiru", "ruiru")]


class Command(BaseCommand):
    help = "Create (or complete) the demo ISP at demo.<platform domain>."

    def add_arguments(self, parser):
        parser.add_argument("--domain", default=f"demo.{settings.PLATFORM_DOMAIN}")
        parser.add_argument("--subscribers", type=int, default=300)
        parser.add_argument("--logins", action="store_true", help="print the demo logins")

    def handle(self, *args, **opts):
        if not 1 <= opts["subscribers"] <= 10_000:
            raise CommandError("--subscribers must be between 1 and 10000")
        started = time.monotonic()
        with connection.cursor() as cursor:
            # Months of history are thousands of small transactions: none waits for its
            # commit's disk flush (a crash loses demo data only, seeded again).
            cursor.execute("SET synchronous_commit TO off")
        ensure_public_tenant()
        ensure_platform_admin()
        owner_email = DEMO_STAFF[0][0]
        isp, _ = create_isp(
            schema=DEMO_SCHEMA,
            name="Demo Fibre & Wireless",
            domain=opts["domain"],
            owner_email=owner_email,
            owner_password=DEMO_PASSWORD,
            actor="seed_demo",
        )
        with tenant_context(isp), audit.acting_as("seed_demo"):
            seed_staff_and_branches()
            steps = [
                (subscribers_demo.seed, {"subscribers": opts["subscribers"]}),
                (billing_demo.seed, {}),
                (payments_demo.seed, {}),
                (inventory_demo.seed, {}),
                (tickets_demo.seed, {}),
                (reports_demo.seed, {}),
                (network_demo.seed, {}),
            ]
            for step, kwargs in steps:
                began = time.monotonic()
                step(out=self.stdout.write, **kwargs)
                if opts["verbosity"] > 1:
                    self.stdout.write(f"    {step.__module__}: {time.monotonic() - began:.1f} s")
        took = time.monotonic() - started
        self.stdout.write(f"Demo ISP: {isp.name} at {isp.primary_host} ({took:.1f} s)")
        if opts["logins"]:
            self.stdout.write(f"Platform admin: {PLATFORM_EMAIL} / {DEMO_PASSWORD}")
            for email, _, role in DEMO_STAFF:
                self.stdout.write(f"  {role:<10} {email} / {DEMO_PASSWORD}")


def ensure_public_tenant():
    """The public schema's own tenant row, so the platform host routes to it."""
    public, _ = Isp.objects.get_or_create(
        schema_name="public", defaults={"name": "Platform", "status": Isp.Status.ACTIVE}
    )
    Domain.objects.get_or_create(
        domain=settings.PLATFORM_DOMAIN, defaults={"tenant": public, "is_primary": True}
    )
    connection.set_schema_to_public()


def ensure_platform_admin():
    if not User.objects.filter(email=PLATFORM_EMAIL).exists():
        User.objects.create_superuser(PLATFORM_EMAIL, DEMO_PASSWORD, full_name="Platform admin")


def seed_staff_and_branches():
    branches = [
        Branch.objects.get_or_create(code=code, defaults={"name": name})[0]
        for name, code in DEMO_BRANCHES
    ]
    owner = User.objects.get(email=DEMO_STAFF[0][0])
    owner.full_name = DEMO_STAFF[0][1]
    owner.save(update_fields=["full_name"])
    for email, name, role in DEMO_STAFF[1:]:
        user = User.objects.filter(email=email).first()
        if user is None:
            user = User.objects.create_user(email, DEMO_PASSWORD, full_name=name, role=role)
            if role == Role.TECHNICIAN:
                user.branches.set(branches[:1])
