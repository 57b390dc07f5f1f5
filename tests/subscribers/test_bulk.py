"""Bulk actions on the subscribers list: the confirmation says how many and what, the
confirmed action runs through the one-account services with the reason typed once,
a second run changes nothing, and branch limits hold even for ids posted by hand."""

import itertools
from types import SimpleNamespace

import pytest
from django.db import connection
from django_tenants.utils import tenant_context

from ispops.staff.models import Branch, Role
from subscribers import bulk_actions, listing, services
from subscribers.models import Plan, ServiceAccount, StatusChange
from tests.probe_world import limited_user

_n = itertools.count(1)


def _customer(plan, branch, status="active"):
    n = next(_n)
    customer = services.create_customer(
        actor="test", name=f"Bulk Person {n}", phone=f"0733{n:06d}", branch=branch
    )
    account = services.create_service_account(
        actor="test",
        customer=customer,
        plan=plan,
        username=f"bulk{n}",
        password="pw",
        status="active",
    )
    if status == "suspended":
        services.change_status(account, "suspended", actor="test", reason="unpaid")
    return customer


@pytest.fixture
def world(alpha):
    """Alpha: four active and one suspended customer in branch 0, two active in
    another branch; two plans."""
    with tenant_context(alpha.isp):
        home = Branch.objects.get(code="alpha-0")
        away = Branch.objects.create(name="Alpha away", code="alpha-away")
        basic = Plan.objects.create(
            name="Bulk Basic", price="1500.00", download_kbps=5000, upload_kbps=5000
        )
        fast = Plan.objects.create(
            name="Bulk Fast", price="2500.00", download_kbps=20000, upload_kbps=20000
        )
        mine = [_customer(basic, home) for _ in range(4)] + [
            _customer(basic, home, status="suspended")
        ]
        theirs = [_customer(basic, away) for _ in range(2)]
        limited = limited_user(Role.SUPPORT, home)
    connection.set_schema_to_public()
    return SimpleNamespace(
        alpha=alpha,
        home=home,
        away=away,
        basic=basic,
        fast=fast,
        mine=mine,
        theirs=theirs,
        limited=limited,
    )


def _post(client, **data):
    return client.post("/subscribers/bulk/", data)


def _statuses(world, customers):
    with tenant_context(world.alpha.isp):
        return sorted(
            ServiceAccount.objects.filter(customer__in=customers).values_list("status", flat=True)
        )


def test_the_confirmation_counts_who_is_suspended_and_who_is_skipped(world):
    client = world.alpha.client(world.alpha.finance)
    response = _post(client, action="suspend", ids=[c.pk for c in world.mine])
    assert response.status_code == 200
    plan = response.context["plan"]
    assert plan.sentence() == "Suspend 4 active accounts; 1 already suspended is skipped."
    assert "Suspend 4 active accounts; 1 already suspended is skipped." in response.content.decode()
    # Nothing changed yet.
    assert _statuses(world, world.mine).count("active") == 4


def test_a_confirmed_suspension_runs_through_the_status_machine_with_one_reason(world):
    client = world.alpha.client(world.alpha.finance)
    ids = [c.pk for c in world.mine]
    response = _post(
        client, action="suspend", ids=ids, confirm="1", reason="Estate maintenance week"
    )
    assert response.status_code == 302
    assert _statuses(world, world.mine) == ["suspended"] * 5
    with tenant_context(world.alpha.isp):
        changes = StatusChange.objects.filter(
            service_account__customer__in=world.mine, reason="Estate maintenance week"
        )
        assert changes.count() == 4
        assert {c.actor_id for c in changes} == {world.alpha.finance.pk}
    page = client.get(response["Location"])
    assert page.status_code == 200
    job = page.context["job"]
    assert (job["done"], job["skipped"], job["failed"], job["finished"]) == (4, 0, 0, True)


def test_a_bulk_job_run_twice_does_nothing_the_second_time(world):
    with tenant_context(world.alpha.isp):
        user = world.alpha.finance
        customers = listing.customers_matching(user, {"branch": str(world.home.pk)})
        plan = bulk_actions.plan_bulk(customers, bulk_actions.Bulk.SUSPEND)
        assert len(plan.items) == 4
        job_id = bulk_actions.start_bulk_job(plan, actor=user, reason="twice")
        first = bulk_actions.run_bulk_job(job_id)
        second = bulk_actions.run_bulk_job(job_id)
        assert first["done"] == 4
        assert second["done"] == 4 and second["processed"] == 4  # nothing more claimed
        assert StatusChange.objects.filter(reason="twice").count() == 4
        # Planned again, the same choice has nothing left to suspend.
        again = bulk_actions.plan_bulk(customers, bulk_actions.Bulk.SUSPEND)
        assert again.items == [] and again.skipped == {"already suspended": 5}


def test_change_plan_confirms_the_count_and_moves_only_those_not_on_it(world):
    with tenant_context(world.alpha.isp):
        account = ServiceAccount.objects.get(customer=world.mine[0])
        services.change_plan(account, world.fast, actor="test")
    client = world.alpha.client(world.alpha.admin)
    ids = [c.pk for c in world.mine]
    first = _post(client, action="plan", ids=ids, plan=world.fast.pk)
    assert first.context["plan"].sentence() == (
        "Move 4 accounts to Bulk Fast; 1 already on Bulk Fast is skipped."
    )
    missing = _post(client, action="plan", ids=ids, confirm="1", reason="x")
    assert missing.status_code == 400  # no plan chosen
    done = _post(client, action="plan", ids=ids, plan=world.fast.pk, confirm="1", reason="Promo")
    assert done.status_code == 302
    with tenant_context(world.alpha.isp):
        plans = set(
            ServiceAccount.objects.filter(customer__in=world.mine).values_list("plan", flat=True)
        )
        assert plans == {world.fast.pk}
        from ispops.audit.models import AuditEntry

        reasons = AuditEntry.objects.filter(
            model="subscribers.serviceaccount", changes__reason="Promo"
        )
        assert reasons.count() == 4


def test_a_confirmation_without_a_reason_is_refused(world):
    client = world.alpha.client(world.alpha.finance)
    response = _post(client, action="suspend", ids=[world.mine[0].pk], confirm="1", reason=" ")
    assert response.status_code == 400
    assert _statuses(world, world.mine[:1]) == ["active"]


def test_a_branch_limited_user_never_touches_another_branchs_customers(world):
    client = world.alpha.client(world.limited)
    ids = [c.pk for c in world.mine + world.theirs]
    shown = _post(client, action="suspend", ids=ids)
    assert shown.context["left_out"] == 2
    assert shown.context["plan"].sentence().startswith("Suspend 4 active accounts")
    _post(client, action="suspend", ids=ids, confirm="1", reason="Posted by hand")
    assert _statuses(world, world.theirs) == ["active", "active"]
    assert _statuses(world, world.mine) == ["suspended"] * 5
    # "All matching" with another branch in the filter is refused, not widened.
    refused = _post(
        client, action="suspend", all="on", query=f"branch={world.away.pk}", confirm="1", reason="x"
    )
    assert refused.status_code == 400
    assert _statuses(world, world.theirs) == ["active", "active"]
    # Nor may they move customers to a branch that is not theirs.
    moved = _post(
        client,
        action="branch",
        ids=[world.mine[0].pk],
        branch=world.away.pk,
        confirm="1",
        reason="x",
    )
    assert moved.status_code == 400


def test_all_matching_the_filter_acts_on_every_page_not_just_the_ticked(world):
    client = world.alpha.client(world.alpha.admin)
    response = _post(client, action="branch", all="on", query=f"branch={world.away.pk}")
    plan = response.context["plan"]
    assert plan.customers == 2
    done = _post(
        client,
        action="branch",
        all="on",
        query=f"branch={world.away.pk}",
        branch=world.home.pk,
        confirm="1",
        reason="Branch merged",
    )
    assert done.status_code == 302
    with tenant_context(world.alpha.isp):
        assert {
            c.branch_id
            for c in type(world.theirs[0]).objects.filter(pk__in=[c.pk for c in world.theirs])
        } == {world.home.pk}


def test_roles_each_action_needs(world):
    technician = world.alpha.client(world.alpha.technician)
    assert _post(technician, action="suspend", ids=[world.mine[0].pk]).status_code == 403
    finance = world.alpha.client(world.alpha.finance)
    assert _post(finance, action="branch", ids=[world.mine[0].pk]).status_code == 403


def test_a_message_to_the_ticked_customers_is_a_campaign_to_them(world):
    client = world.alpha.client(world.alpha.support)
    response = _post(client, action="message", ids=[world.mine[0].pk, world.theirs[0].pk])
    assert response.status_code == 302
    assert response["Location"].startswith("/messages/campaigns/new/?ids=")


def test_junk_ids_are_a_clear_error(world):
    client = world.alpha.client(world.alpha.finance)
    response = _post(client, action="suspend", ids=["1; DROP TABLE"])
    assert response.status_code == 400
    assert "not customers" in response.content.decode()


def test_another_users_job_page_is_not_found(world):
    client = world.alpha.client(world.alpha.finance)
    response = _post(client, action="suspend", ids=[world.mine[0].pk], confirm="1", reason="r")
    url = response["Location"]
    assert client.get(url).status_code == 200
    assert world.alpha.client(world.alpha.admin).get(url).status_code == 404
    assert client.get("/subscribers/bulk/not-a-job/").status_code == 404


def test_the_list_offers_the_bulk_bar_and_an_overdue_filter(world):
    client = world.alpha.client(world.alpha.finance)
    html = client.get("/subscribers/", {"branch": world.home.pk}).content.decode()
    assert 'name="ids"' in html and "All 5 matching this filter" in html
    assert 'name="overdue"' in html
    with tenant_context(world.alpha.isp):
        assert (
            listing.overdue_customers(listing.customers_matching(world.alpha.finance, {})).count()
            == 0
        )


def test_a_large_set_goes_to_a_worker_and_the_page_polls_its_progress(world):
    with tenant_context(world.alpha.isp):
        many = [_customer(world.basic, world.home) for _ in range(21)]
    connection.set_schema_to_public()
    client = world.alpha.client(world.alpha.admin)
    ids = [c.pk for c in many]
    shown = _post(client, action="suspend", ids=ids)
    assert shown.context["plan"].sentence() == "Suspend 21 active accounts."
    response = _post(client, action="suspend", ids=ids, confirm="1", reason="Tower down")
    url = response["Location"]
    # Handed to a worker, not done in the request.
    assert _statuses(world, many) == ["active"] * 21
    waiting = client.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert "Waiting for a worker" in waiting and 'hx-trigger="every 2s"' in waiting
    assert "<html" not in waiting
    job_id = url.rstrip("/").rsplit("/", 1)[1]
    with tenant_context(world.alpha.isp):
        bulk_actions.run_bulk_job(job_id)  # what the worker's task does
    done = client.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert "Finished: 21 of 21." in done and "every 2s" not in done
    assert _statuses(world, many) == ["suspended"] * 21
