"""Portal and staff sessions never open each other; a subscriber sees only the accounts
their phone matches, on this ISP only; account choice; the home page's states."""

from django.conf import settings
from django.utils import timezone
from django_tenants.utils import tenant_context

from subscribers import services as subscribers
from subscribers.models import Customer
from tests.portal.conftest import sign_in

PHONE = "254712345601"


def test_staff_login_does_not_open_the_portal(alpha, make_customer):
    make_customer("0712345601")
    staff = alpha.client(alpha.owner)
    page = staff.get("/my/").content.decode()
    assert "Sign in to your account" in page
    for path in ("/my/choose/", "/my/password/"):
        response = staff.get(path)
        assert response.status_code == 302 and response["Location"] == "/my/"


def test_portal_sign_in_does_not_open_staff_pages(alpha, make_customer):
    make_customer("0712345601")
    client = alpha.client()
    sign_in(alpha, client, PHONE)
    assert client.get("/my/").status_code == 200
    for path in ("/", "/staff/", "/subscribers/"):
        response = client.get(path)
        assert response.status_code == 302 and response["Location"].startswith("/login/")
    assert "_auth_user_id" not in client.session


def test_one_customer_is_chosen_at_once(alpha, make_customer):
    make_customer("0712345601")
    response = sign_in(alpha, alpha.client(), PHONE)
    assert response["Location"] == "/my/"


def test_several_accounts_choose_only_among_their_own(alpha, make_customer):
    first = make_customer("0712345601", name="Home Account")
    second = make_customer("0722000001", alt_phone="0712345601", name="Shop Account")
    stranger = make_customer("0722000002", name="Stranger Person")
    client = alpha.client()
    assert sign_in(alpha, client, PHONE)["Location"] == "/my/choose/"
    assert client.get("/my/")["Location"] == "/my/choose/"
    page = client.get("/my/choose/").content.decode()
    assert first.account in page and second.account in page
    assert "Stranger Person" not in page

    # A forged id in the choose form is refused.
    response = client.post("/my/choose/", {"customer": stranger.pk})
    assert (
        response.status_code == 200 and "Choose one of your accounts" in response.content.decode()
    )
    assert client.get("/my/")["Location"] == "/my/choose/"
    client.post("/my/choose/", {"customer": "not-a-number"})

    client.post("/my/choose/", {"customer": second.pk})
    home = client.get("/my/").content.decode()
    assert "Shop Account" in home and "Stranger Person" not in home

    # A forged id in the session shows nothing either.
    with tenant_context(alpha.isp):
        session = client.session
        session["portal"] = {"phone": PHONE, "customer": stranger.pk}
        session.save()
    response = client.get("/my/")
    assert response.status_code == 302 and response["Location"] == "/my/choose/"


def test_phone_removed_from_customer_ends_its_view(alpha, make_customer):
    customer = make_customer("0712345601")
    client = alpha.client()
    sign_in(alpha, client, PHONE)
    with tenant_context(alpha.isp):
        Customer.objects.filter(pk=customer.pk).update(phone="254722000009")
    assert client.get("/my/")["Location"] == "/my/choose/"
    assert customer.account not in client.get("/my/choose/").content.decode()


def test_another_isps_customer_cannot_sign_in_here(alpha, beta):
    with tenant_context(beta.isp):
        subscribers.create_customer(actor="test", name="Beta Person", phone="0712345601")
    client = alpha.client()
    client.post("/my/", {"phone": "0712345601"})
    from ispops.messaging.models import Message

    with tenant_context(alpha.isp):
        assert not Message.objects.filter(to=PHONE).exists()
    with tenant_context(beta.isp):
        assert not Message.objects.filter(to=PHONE).exists()
    response = client.post("/my/code/", {"code": "123456"})
    assert "portal" not in client.session

    # A beta portal session is no session on alpha's host (sessions live per schema).
    beta_client = beta.client()
    assert sign_in(beta, beta_client, PHONE)["Location"] == "/my/"
    assert "Beta Person" in beta_client.get("/my/").content.decode()
    carried = alpha.client()
    carried.cookies[settings.SESSION_COOKIE_NAME] = beta_client.cookies[
        settings.SESSION_COOKIE_NAME
    ].value
    page = carried.get("/my/").content.decode()
    assert "Sign in to your account" in page and "Beta Person" not in page
    assert response.status_code == 400


def test_sign_out_needs_post_and_ends_the_portal_session(alpha, make_customer):
    make_customer("0712345601")
    client = alpha.client()
    sign_in(alpha, client, PHONE)
    assert client.get("/my/signout/").status_code == 405
    assert client.post("/my/signout/")["Location"] == "/my/"
    assert "Sign in to your account" in client.get("/my/").content.decode()


def test_home_shows_walled_garden_with_its_reason(alpha, make_customer):
    customer = make_customer("0712345601")
    with tenant_context(alpha.isp):
        account = customer.service_accounts.get()
        subscribers.change_status(
            account,
            "suspended",
            actor="test",
            reason="Unpaid invoice INV-7",
            suspension="soft",
            at=timezone.now(),
        )
    client = alpha.client()
    sign_in(alpha, client, PHONE)
    home = client.get("/my/").content.decode()
    assert "Limited until paid" in home and "Unpaid invoice INV-7" in home
