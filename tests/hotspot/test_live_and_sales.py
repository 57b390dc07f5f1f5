"""Staff's hotspot pages for the day: who is online per router (time and data left,
end one now, branch-limited), and what was sold per day, by package and by agent."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from django_tenants.utils import tenant_context

from hotspot import entitlements, vouchers
from hotspot.models import Entitlement
from ispops.staff.models import Branch
from network.models import Router
from payments.models import Payment


@pytest.fixture
def router(in_alpha):
    return Router.objects.create(name="stage-ap", host="10.9.0.2", username="api")


def live_one(router, package, **fields):
    return entitlements.grant(
        router=router, package=package, source="staff", now=timezone.now(), **fields
    )


def test_online_now_lists_live_logins_with_time_and_data_left(alpha, router, package):
    package.data_limit_bytes = 1_000_000_000
    package.save()
    granted = live_one(router, package, phone="254712345601", mac="AA:BB:CC:00:11:22")
    Entitlement.objects.filter(pk=granted.pk).update(used_bytes=850_000_000)
    page = alpha.client(alpha.support).get("/hotspot/live/").content.decode()
    assert granted.login in page and "stage-ap" in page and "1 hour" in page
    assert "0712345601" in page and "AA:BB:CC:00:11:22" in page
    assert "850 MB used of 1 GB" in page and "85% of the data used" in page
    assert "min left" in page and "End now" in page


def test_ending_one_now_ends_it_and_is_for_support_and_up(alpha, router, package):
    granted = live_one(router, package)
    url = f"/hotspot/live/{granted.pk}/end/"
    assert alpha.client(alpha.technician).post(url).status_code == 403
    response = alpha.client(alpha.support).post(url)
    assert response.status_code == 302
    with tenant_context(alpha.isp):
        granted.refresh_from_db()
        assert granted.state == Entitlement.State.ENDED and granted.end_reason == "revoked"
    assert alpha.client(alpha.support).post(f"/hotspot/live/{granted.pk}/end/").status_code == 404


def test_branch_limited_staff_see_only_their_routers(alpha, package):
    with tenant_context(alpha.isp):
        mine = Branch.objects.create(name="Mine", code="m1")
        theirs = Branch.objects.create(name="Theirs", code="t1")
        here = Router.objects.create(name="here-ap", host="10.9.0.5", username="api", branch=mine)
        there = Router.objects.create(
            name="there-ap", host="10.9.0.6", username="api", branch=theirs
        )
        seen, hidden = live_one(here, package), live_one(there, package)
        alpha.support.branches.set([mine])
    staff = alpha.client(alpha.support)
    page = staff.get("/hotspot/live/").content.decode()
    assert seen.login in page and hidden.login not in page
    assert staff.post(f"/hotspot/live/{hidden.pk}/end/").status_code == 404
    assert staff.get(f"/hotspot/live/?router={there.pk}").status_code == 200
    assert hidden.login not in staff.get(f"/hotspot/live/?router={there.pk}").content.decode()


def test_sales_add_cards_and_purchases_per_day_package_and_agent(
    alpha, router, package, make_batch
):
    with tenant_context(alpha.isp):
        batch = make_batch(count=3, price=Decimal("20.00"), agent=alpha.agent)
        cards = list(batch.vouchers.all())
        vouchers.sell(cards[0], actor=alpha.agent, phone="")
        vouchers.mark_redeemed(cards[1], timezone.now())  # never recorded as sold
        payment = Payment.objects.create(
            method="mpesa", reference="UC1ABC2DEF", amount=Decimal("50.00"), state="credited"
        )
        live_one(router, package, payment=payment, phone="254712345601")
        Entitlement.objects.filter(payment=payment).update(source=Entitlement.Source.PURCHASE)
    finance = alpha.client(alpha.finance)
    page = finance.get("/hotspot/sales/?days=7").content.decode()
    assert "KES 90.00" in page  # 2 cards x 20 + 50 by M-Pesa
    assert "2 cards, 1 purchase" in page and "<svg" in page
    assert alpha.agent.full_name in page
    csv_text = finance.get("/hotspot/sales/?days=7&format=csv").content.decode()
    today = timezone.localdate().isoformat()
    assert f"{today},2,40.00,1,50.00,90.00" in csv_text
    assert alpha.client(alpha.support).get("/hotspot/sales/").status_code == 403


def test_sales_leave_out_cards_of_other_days(alpha, package, make_batch):
    with tenant_context(alpha.isp):
        batch = make_batch(count=1, price=Decimal("20.00"))
        card = batch.vouchers.get()
        vouchers.sell(card, actor=alpha.owner, phone="")
        card.__class__.objects.filter(pk=card.pk).update(
            sold_at=timezone.now() - timedelta(days=40)
        )
    page = alpha.client(alpha.finance).get("/hotspot/sales/?days=30").content.decode()
    assert "Nothing sold in this period" in page
