"""Staff open a customer's portal from the 360 page ("view as customer"): they see what
the customer sees, can change nothing, the visit is in the portal's event log, and a
branch-limited member of staff cannot reach another branch's customer this way."""

from django_tenants.utils import tenant_context

from ispops.staff.models import Branch
from payments.models import StkRequest
from portal.models import PortalEvent

PHONE = "254712345601"


def test_staff_view_the_customers_home_read_only_and_the_visit_is_recorded(alpha, make_customer):
    customer = make_customer("0712345601", name="Akinyi Otieno")
    staff = alpha.client(alpha.support)
    detail = staff.get(f"/subscribers/{customer.pk}/").content.decode()
    assert f'action="/my/as/{customer.pk}/"' in detail and "View as customer" in detail

    response = staff.post(f"/my/as/{customer.pk}/")
    assert response.status_code == 302 and response["Location"] == "/my/"
    home = staff.get("/my/").content.decode()
    assert "Akinyi Otieno" in home and customer.account in home
    assert "read-only" in home
    assert staff.get("/my/pay/").status_code == 200

    # Nothing can be changed: a payment prompt, a password, are refused before the view.
    refused = staff.post("/my/pay/", {"phone": "0712345601", "terms": "1"})
    assert refused.status_code == 403 and "Read only" in refused.content.decode()
    assert staff.post("/my/password/", {"password1": "x" * 12}).status_code == 403
    with tenant_context(alpha.isp):
        assert not StkRequest.objects.filter(customer=customer).exists()
        event = PortalEvent.objects.get(kind=PortalEvent.Kind.VIEWED_BY_STAFF)
        assert event.customer_id == customer.pk and event.staff_id == alpha.support.pk

    # Leaving returns to the 360 page; the staff login stays.
    response = staff.post("/my/signout/")
    assert response["Location"] == f"/subscribers/{customer.pk}/"
    assert staff.get(f"/subscribers/{customer.pk}/").status_code == 200
    assert "Sign in to your account" in staff.get("/my/").content.decode()


def test_view_as_needs_a_staff_login_and_a_post(alpha, make_customer):
    customer = make_customer("0712345601")
    anonymous = alpha.client()
    response = anonymous.post(f"/my/as/{customer.pk}/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    assert "Sign in to your account" in anonymous.get("/my/").content.decode()
    assert alpha.client(alpha.owner).get(f"/my/as/{customer.pk}/").status_code == 405


def test_a_subscriber_cannot_use_view_as_to_see_someone_else(alpha, make_customer):
    from tests.portal.conftest import sign_in

    make_customer("0712345601")
    stranger = make_customer("0722000002", name="Stranger Person")
    client = alpha.client()
    sign_in(alpha, client, PHONE)
    response = client.post(f"/my/as/{stranger.pk}/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    assert "Stranger Person" not in client.get("/my/").content.decode()


def test_branch_limited_staff_cannot_view_another_branchs_customer(alpha, make_customer):
    with tenant_context(alpha.isp):
        mine, theirs = (
            Branch.objects.create(name="Mine", code="m1"),
            Branch.objects.create(name="Theirs", code="t1"),
        )
        alpha.support.branches.set([mine])
    customer = make_customer("0712345601", branch=theirs)
    staff = alpha.client(alpha.support)
    assert staff.post(f"/my/as/{customer.pk}/").status_code == 404
    with tenant_context(alpha.isp):
        assert not PortalEvent.objects.exists()


def test_a_forged_view_as_session_for_another_branch_shows_nothing(alpha, make_customer):
    with tenant_context(alpha.isp):
        mine, theirs = (
            Branch.objects.create(name="Mine", code="m1"),
            Branch.objects.create(name="Theirs", code="t1"),
        )
    visible = make_customer("0712345601", branch=mine)
    hidden = make_customer("0722000002", branch=theirs, name="Hidden Person")
    staff = alpha.client(alpha.support)
    staff.post(f"/my/as/{visible.pk}/")
    # Limited afterwards (or a session edited by hand): the check is on every request.
    with tenant_context(alpha.isp):
        alpha.support.branches.set([mine])
    session = staff.session
    session["portal"]["customer"] = hidden.pk
    session.save()
    page = staff.get("/my/").content.decode()
    assert "Hidden Person" not in page and "Sign in to your account" in page


def test_the_360_page_shows_portal_sign_ins_and_staff_views(alpha, make_customer):
    from tests.portal.conftest import sign_in

    customer = make_customer("0712345601")
    sign_in(alpha, alpha.client(), PHONE)
    staff = alpha.client(alpha.support)
    staff.post(f"/my/as/{customer.pk}/")
    staff.post("/my/signout/")
    page = staff.get(f"/my/activity/{customer.pk}/").content.decode()
    assert "Signed in with a code" in page and "0712345601" in page
    assert "Opened by staff" in page and alpha.support.full_name in page
    partial = staff.get(f"/my/activity/{customer.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert "Signed in with a code" in partial and "<html" not in partial
    assert alpha.client().get(f"/my/activity/{customer.pk}/")["Location"].startswith("/login/")
