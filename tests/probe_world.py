"""Rows with marker names for branch and tenant leak tests: one set per (ISP, branch).

Every row of a set has the same primary key (OWN, OTHER_BRANCH or OTHER_ISP), so a
route's integer parameters can be filled without knowing which model the route shows:
whatever the view looks up, the row with that id exists and belongs to the set.
Branch-scoped rows (customers and what hangs off them, branch routers, sites, stores,
items, tickets, technicians) carry the set's marker in their names; ISP-wide rows
(plans, equipment models, billing runs) carry only the ISP's marker, since every branch
may see them.
"""

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from ispops.staff.models import Branch, Role, User

OWN, OTHER_BRANCH, OTHER_ISP = 800_001, 900_001, 700_001
# Markers are lower-case letters only, so no escaping or formatting changes them.
MARK_OTHER_BRANCH = "zqobranchz"
MARK_OTHER_ISP = "zqoispz"


@dataclass
class ProbeSet:
    pk: int
    branch: Branch
    technician: User
    customer: object
    account: object


def build_set(
    pk: int, marker: str, *, isp_marker: str = "", shared_router=False, run_pk=None
) -> ProbeSet:
    """The rows of one (ISP, branch) set, all with primary key `pk`. Call inside the
    ISP's schema. `marker` goes in branch-scoped names, `isp_marker` in ISP-wide ones;
    with `shared_router` the router belongs to no branch (every branch's staff see it).
    The invoice goes into billing run `run_pk` (made if missing; default `pk`)."""
    from billing.models import BillingRun, DunningHold, Invoice, LedgerEntry
    from inventory.models import EquipmentModel, Item, Store
    from network.models import DriftItem, Router, RouterJob
    from payments.models import Payment, StatementUpload, StkRequest
    from subscribers.models import (
        AddOn,
        Customer,
        ImportJob,
        Installation,
        NetworkSite,
        Plan,
        ServiceAccount,
    )
    from tickets.models import Ticket

    now = timezone.now()
    today = timezone.localdate()
    tag = f"{marker} {pk}"
    branch = Branch.objects.create(pk=pk, name=f"Branch {tag}", code=f"b{pk}")
    tech = User.objects.create_user(
        f"tech{pk}@probe.test", "x-pass-12345", role=Role.TECHNICIAN, full_name=f"Tech {tag}"
    )
    tech.branches.set([branch])
    plan = Plan.objects.create(
        pk=pk, name=f"Plan {isp_marker} {pk}", price=1000, download_kbps=1, upload_kbps=1
    )
    site = NetworkSite.objects.create(pk=pk, name=f"Site {tag}", kind="pop", branch=branch)
    router = Router.objects.create(
        pk=pk,
        name=f"Router {isp_marker if shared_router else tag}",
        host="192.0.2.1",
        username="admin",
        branch=None if shared_router else branch,
    )
    customer = Customer.objects.create(
        pk=pk, account=f"P{pk}", name=f"Customer {tag}", branch=branch, site=site
    )
    account = ServiceAccount.objects.create(
        pk=pk, customer=customer, plan=plan, service="pppoe", username=f"u{pk}", router=router
    )
    AddOn.objects.create(pk=pk, service_account=account, kind="other", name=f"Addon {tag}", price=1)
    Installation.objects.create(pk=pk, service_account=account)
    ImportJob.objects.create(
        pk=pk,
        kind="subscribers",
        filename=f"import {tag}.csv",
        content="",
        errors=[{"line": 2, "reason": f"row of {tag}"}],
        created_by=tech,
    )
    RouterJob.objects.create(pk=pk, router=router, action="provision", service_account=account)
    DriftItem.objects.create(
        pk=pk,
        router=router,
        kind="missing",
        service="pppoe",
        username=f"drift {tag}",
        service_account=account,
        detail=f"drift {tag}",
    )
    run_pk = run_pk or pk
    run = BillingRun.objects.filter(pk=run_pk).first() or BillingRun.objects.create(
        pk=run_pk, run_date=today, started_by=f"run {isp_marker}", state="done"
    )
    Invoice.objects.create(
        pk=pk,
        number=f"INV-{pk}",
        customer=customer,
        service_account=account,
        billing_run=run,
        issued_on=today,
        due_on=today,
        subtotal=Decimal("1000"),
        vat=Decimal("0"),
        total=Decimal("1000"),
        vat_rate=Decimal("0"),
        vat_inclusive=True,
    )
    LedgerEntry.objects.create(
        pk=pk,
        customer=customer,
        kind="payment",
        amount=Decimal("-10"),
        description=f"pay {tag}",
        actor_label="probe",
    )
    DunningHold.objects.create(pk=pk, customer=customer, kind="exempt", created_by=f"by {tag}")
    Payment.objects.create(
        pk=pk,
        method="cash",
        reference=f"R{pk}",
        amount=10,
        customer=customer,
        account_reference=f"P{pk}",
    )
    StkRequest.objects.create(
        pk=pk, customer=customer, phone="254700000001", amount=10, account_reference=f"P{pk}"
    )
    StatementUpload.objects.create(pk=pk, uploaded_by=f"{isp_marker}", filename=f"s{pk}.csv")
    model = EquipmentModel.objects.create(pk=pk, name=f"Model {isp_marker} {pk}", kind="cpe_router")
    store = Store.objects.create(pk=pk, name=f"Store {tag}", branch=branch)
    Item.objects.create(pk=pk, model=model, serial=f"S{pk}", store=store)
    Ticket.objects.create(
        pk=pk,
        subject=f"Ticket {tag}",
        customer=customer,
        site=site,
        first_response_due=now + timedelta(hours=1),
        response_warn_at=now + timedelta(minutes=30),
        resolution_due=now + timedelta(days=1),
        resolution_warn_at=now + timedelta(hours=12),
    )
    return ProbeSet(pk=pk, branch=branch, technician=tech, customer=customer, account=account)


def limited_user(role: str, branch: Branch, suffix: str = "") -> User:
    """A staff member of `role` limited to `branch`."""
    user = User.objects.create_user(
        f"{role}{suffix}-limited@probe.test", "x-pass-12345", role=role, full_name=f"{role} ltd"
    )
    user.branches.set([branch])
    return user
