"""The owner's home on a scripted history, frozen at 20 March 2026 10:00 (Nairobi):
every figure worked out by hand, a branch-limited admin's cover their branch only,
support keeps the home it had, and the queries are bounded."""

from datetime import date, datetime
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone
from django_tenants.utils import tenant_context

from billing import services as billing
from ispops.staff.models import Branch, Role, User
from network.models import Router
from reports import home
from reports.models import Snapshot, SnapshotDay
from subscribers import services as subscribers
from subscribers.models import Plan
from tickets import services as tickets

TODAY = date(2026, 3, 20)


def at(month, day, hour=9, minute=0):
    return datetime(2026, month, day, hour, minute, tzinfo=timezone.get_current_timezone())


NOW = at(3, 20, 10)


def active_since(plan, when, *, name, phone, branch=None):
    customer = subscribers.create_customer(actor="t", name=name, phone=phone, branch=branch)
    with time_machine.travel(when, tick=False):
        account = subscribers.create_service_account(
            actor="t", customer=customer, plan=plan, username=f"u-{phone}", status="active"
        )
    return account


def figures_of(user):
    with time_machine.travel(NOW, tick=False):
        found = home.figures(user, today=TODAY, now=timezone.now())
    return {f["label"]: f for f in found}


@pytest.fixture
def history(alpha):
    """Akinyi (main branch, active since February), Baraka (east, active 5 March),
    Chebet (main, active in February, terminated 15 March), Dalia (main, active
    8 March). Akinyi owes 1,000 from 1 March (due 8 March) and paid 400; Baraka 500
    from 18 March (due 25 March); Chebet 2,000 from February, unpaid. Akinyi's ticket
    of 10 March is past its SLA, Baraka's of this morning is not. Two routers down
    (one east), one up. Snapshots: 31 Jan 9,000; 28 Feb 10,000 (east 2,000);
    19 Mar 12,500 (east 3,000)."""
    with tenant_context(alpha.isp):
        main = Branch.objects.order_by("id").first()
        east = Branch.objects.create(name="East", code="alpha-east")
        plan = Plan.objects.create(
            name="Free 10M", price=Decimal("0"), billing="postpaid",
            download_kbps=10_000, upload_kbps=5_000,
        )  # fmt: skip
        akinyi = active_since(plan, at(2, 10), name="Akinyi", phone="0712000011", branch=main)
        baraka = active_since(plan, at(3, 5), name="Baraka", phone="0712000012", branch=east)
        chebet = active_since(plan, at(2, 12), name="Chebet", phone="0712000013", branch=main)
        active_since(plan, at(3, 8), name="Dalia", phone="0712000014", branch=main)
        subscribers.change_status(
            chebet, "terminated", actor="t", reason="Moved away", at=at(3, 15)
        )
        billing.charge_once(akinyi.customer, "1000", actor="t", reason="Call-out", at=at(3, 1))
        billing.record_payment(akinyi.customer, "400", actor="t", reference="P1", at=at(3, 3))
        billing.charge_once(baraka.customer, "500", actor="t", reason="Router", at=at(3, 18))
        billing.charge_once(chebet.customer, "2000", actor="t", reason="Cable", at=at(2, 15))
        with time_machine.travel(at(3, 10), tick=False):
            tickets.open_ticket(customer=akinyi.customer, subject="Down", actor="t",
                                tell_customer=False)  # fmt: skip
        with time_machine.travel(at(3, 20, 9, 55), tick=False):
            tickets.open_ticket(customer=baraka.customer, subject="Slow", actor="t",
                                tell_customer=False)  # fmt: skip
        for name, status, branch in (("r1", "offline", main), ("r2", "offline", east),
                                     ("r3", "online", main)):  # fmt: skip
            Router.objects.create(name=name, host="192.0.2.1", username="api", status=status,
                                  branch=branch)  # fmt: skip
        for day, total, east_mrr in ((date(2026, 1, 31), "9000", None),
                                     (date(2026, 2, 28), "10000", "2000"),
                                     (date(2026, 3, 19), "12500", "3000")):  # fmt: skip
            by_branch = {} if east_mrr is None else {
                str(east.pk): east_mrr, str(main.pk): str(Decimal(total) - Decimal(east_mrr))
            }  # fmt: skip
            SnapshotDay.objects.create(day=day, services=2, mrr=Decimal(total),
                                       by_branch=by_branch)  # fmt: skip
            if east_mrr is None:
                continue
            main_mrr = Decimal(total) - Decimal(east_mrr)
            # Chebet (main) paid 2,000 of main's MRR until she left on 15 March: the
            # month's one churned customer by the MRR movement's rule.
            rows = [(baraka, east, Decimal(east_mrr)), (akinyi, main, main_mrr)]
            if day < date(2026, 3, 15):
                rows = [(baraka, east, Decimal(east_mrr)), (akinyi, main, main_mrr - 2000),
                        (chebet, main, Decimal(2000))]  # fmt: skip
            for account, branch, mrr in rows:
                Snapshot.objects.create(
                    day=day, service_account=account, customer=account.customer,
                    plan=plan, branch=branch, status="active", mrr=mrr,
                )  # fmt: skip
        limited = User.objects.create_user(
            "east-admin@alpha.test", "pw-12345678", role=Role.ADMIN, full_name="East Admin"
        )
        limited.branches.set([east])
    return {"limited": limited}


def test_the_owners_figures_worked_out_by_hand(alpha, history):
    with tenant_context(alpha.isp):
        f = figures_of(alpha.owner)
    assert f["MRR this month"]["value"] == "KES 12,500.00"
    assert f["MRR this month"]["change"] == "+KES 2,500.00"
    assert f["MRR this month"]["spark"]  # three month-ends: a line
    # Billed in March 1,000 + 500, 400 of it paid: 26.67 % (reports.collections' rate).
    assert f["Collection rate this month"]["value"] == "26.67%"
    # Akinyi, Baraka, Dalia active; Baraka and Dalia joined, Chebet left: +1.
    assert f["Active subscribers"]["value"] == "3"
    assert f["Active subscribers"]["change"] == "+1 this month"
    # Akinyi's 600 left (due 8 March) and Chebet's 2,000 (due in February).
    assert f["Overdue"]["value"] == "KES 2,600.00"
    assert f["Churned this month"]["value"] == 1
    assert f["Churned this month"]["url"] == "/reports/mrr/2026-03/churn/"
    assert f["Tickets breaching SLA"]["value"] == 1
    assert f["Routers down"]["value"] == 2
    assert f["Tickets breaching SLA"]["url"] == "/tickets/?risk=breached"
    assert f["Routers down"]["url"] == "/routers/"


def test_a_branch_limited_admin_sees_their_branch_only(alpha, history):
    with tenant_context(alpha.isp):
        f = figures_of(User.objects.get(pk=history["limited"].pk))
    assert f["MRR this month"]["value"] == "KES 3,000.00"
    assert f["MRR this month"]["change"] == "+KES 1,000.00"
    assert f["Collection rate this month"]["value"] == "0.00%"
    assert f["Active subscribers"]["value"] == "1"
    assert f["Active subscribers"]["change"] == "+1 this month"
    assert f["Overdue"]["value"] == "KES 0.00"
    assert f["Churned this month"]["value"] == 0
    assert f["Tickets breaching SLA"]["value"] == 0
    assert f["Routers down"]["value"] == 1


def test_without_a_snapshot_the_home_says_so(alpha):
    with tenant_context(alpha.isp):
        f = figures_of(alpha.owner)
    assert f["MRR this month"]["value"] == "no snapshot yet"
    assert f["MRR this month"]["url"].startswith("/reports/")  # the MRR report, or the list


def test_the_figures_take_a_bounded_number_of_queries(
    alpha, history, django_assert_max_num_queries
):
    with tenant_context(alpha.isp):
        limited = User.objects.get(pk=history["limited"].pk)
        limited.branch_ids()
        # Settings rows made once; the month's movement worked out once (then kept).
        home.figures(alpha.owner, today=TODAY, now=NOW)
        home.figures(limited, today=TODAY, now=NOW)
        with django_assert_max_num_queries(13):
            home.figures(alpha.owner, today=TODAY, now=NOW)
        with django_assert_max_num_queries(13):
            home.figures(limited, today=TODAY, now=NOW)


def test_the_owner_sees_the_month_and_support_keeps_its_home(alpha, history):
    with time_machine.travel(NOW, tick=False):
        owner = alpha.client(alpha.owner).get("/")
        support = alpha.client(alpha.support).get("/")
    page = owner.content.decode()
    assert "This month" in page and "KES 12,500.00" in page and "<polyline" in page
    assert "month_figures" not in support.context or not support.context["month_figures"]
    labels = [f["label"] for f in support.context["figures"]]
    assert labels == ["Active subscribers", "Suspended", "Leads in the pipeline",
                      "Routers online", "Open alerts", "Router jobs waiting",
                      "Active staff", "Branches"]  # fmt: skip
    assert "This month" not in support.content.decode()


def test_a_branch_limited_admins_home_counts_their_routers_only(alpha, history):
    with tenant_context(alpha.isp):
        limited = User.objects.get(pk=history["limited"].pk)
    with time_machine.travel(NOW, tick=False):
        page = alpha.client(limited).get("/")
        owner = alpha.client(alpha.owner).get("/")
    figures = {f["label"]: f["value"] for f in page.context["figures"]}
    # r2 (east, offline) and none online; the owner sees r1, r2 and r3 (online).
    assert figures["Routers online"] == "0/1"
    assert {f["label"]: f["value"] for f in owner.context["figures"]}["Routers online"] == "1/3"
    assert page.context["month_figures"][0]["label"] == "MRR this month"


def test_the_home_page_costs_the_statements_the_bench_prints(
    alpha, history, django_assert_num_queries
):
    client = alpha.client(alpha.owner)
    with time_machine.travel(NOW, tick=False):
        client.get("/")  # session, settings rows and the month's movement kept
        # `python -m bench reports` prints 24 for the owner's home at 100,000
        # subscribers: the count does not grow with them.
        with django_assert_num_queries(24):
            assert client.get("/").status_code == 200


def test_the_owners_home_shows_each_figure_once(alpha, history):
    with time_machine.travel(NOW, tick=False):
        page = alpha.client(alpha.owner).get("/")
    labels = [f["label"] for f in page.context["month_figures"] + page.context["figures"]]
    assert labels.count("Active subscribers") == 1 and "Suspended" in labels
