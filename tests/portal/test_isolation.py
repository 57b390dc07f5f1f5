"""One subscriber can never see or touch another's data: every portal route that takes
an id is tried, GET and POST, with a second customer's ids (same ISP) and with ids from
another ISP; each is a 404 that shows nothing of theirs and changes nothing. A route
added later without an entry in VICTIM_IDS fails the coverage test below, so it cannot
be forgotten."""

import io
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import URLPattern
from django.utils import timezone
from django_tenants.utils import tenant_context
from PIL import Image

from payments.models import StkRequest
from portal import urls as portal_urls
from portal.tickets import open_request, reply
from subscribers import plan_changes
from subscribers.models import PlanChange
from tests.portal.conftest import sign_in
from tickets.models import Attachment, TicketEvent

ATTACKER, VICTIM = "254712345601", "254722000002"

# route name -> the victim's ids for its URL parameters (from the `victim` fixture).
VICTIM_IDS = {
    "pay_status": lambda v: {"public_id": v["stk"].public_id},
    "data_status": lambda v: {"public_id": v["stk"].public_id},
    "plan_preview": lambda v: {"account": v["account"].pk, "plan_id": v["other_plan"].pk},
    "plan_cancel": lambda v: {"pk": v["change"].pk},
    "ticket": lambda v: {"pk": v["ticket"].pk},
    "ticket_reply": lambda v: {"pk": v["ticket"].pk},
    "ticket_photo": lambda v: {"pk": v["photo"].pk},
    # Staff pages under /my/: a subscriber is sent to the staff login.
    "view_as": lambda v: {"pk": v["customer"].pk},
    "activity": lambda v: {"pk": v["customer"].pk},
}
STAFF_ONLY = {"view_as", "activity"}


def routes_with_ids():
    return [
        p for p in portal_urls.urlpatterns if isinstance(p, URLPattern) and p.pattern.converters
    ]


def test_every_portal_route_with_an_id_is_tried():
    names = {p.name for p in routes_with_ids()}
    assert names == set(VICTIM_IDS), (
        f"add the new route(s) to VICTIM_IDS: {names ^ set(VICTIM_IDS)}"
    )


def _photo(name="broken.png"):
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 20, 20)).save(buffer, format="PNG")
    return SimpleUploadedFile(name, buffer.getvalue(), content_type="image/png")


@pytest.fixture
def victim(alpha, make_customer, plan):
    """A customer with something behind every kind of id: a payment prompt, a service
    with a plan it may move to and a scheduled move, a ticket with a reply and photo."""
    from subscribers.models import Plan

    customer = make_customer(VICTIM[:3].replace("254", "0") + VICTIM[3:], name="Victim Person")
    with tenant_context(alpha.isp):
        other_plan = Plan.objects.create(
            name="Home 20M", price="3500.00", download_kbps=20_000, upload_kbps=10_000
        )
        account = customer.service_accounts.get()
        now = timezone.now()
        stk = StkRequest.objects.create(
            customer=customer,
            phone=VICTIM,
            amount=100,
            account_reference=customer.account,
            source=StkRequest.Source.PORTAL,
        )
        change = plan_changes.schedule(
            account, other_plan, at=now + timedelta(days=10), actor="test", now=now
        )
        ticket = open_request(customer, category="other", description="My router is off")
        reply(ticket, body="Still off", photo=_photo())
        photo = Attachment.objects.get(ticket=ticket)
    return {
        "customer": customer,
        "stk": stk,
        "account": account,
        "other_plan": other_plan,
        "change": change,
        "ticket": ticket,
        "photo": photo,
    }


def _state(alpha, victim) -> tuple:
    with tenant_context(alpha.isp):
        return (
            PlanChange.objects.get(pk=victim["change"].pk).state,
            TicketEvent.objects.filter(ticket=victim["ticket"]).count(),
            victim["account"].__class__.objects.get(pk=victim["account"].pk).plan_id,
            StkRequest.objects.filter(customer=victim["customer"]).count(),
        )


def _url(pattern, kwargs) -> str:
    from django.urls import reverse

    return reverse(f"portal:{pattern.name}", kwargs=kwargs)


def test_another_customers_ids_are_not_found_on_any_route(alpha, make_customer, victim):
    make_customer("0712345601", name="Attacker Person")
    client = alpha.client()
    sign_in(alpha, client, ATTACKER)
    before = _state(alpha, victim)
    for pattern in routes_with_ids():
        url = _url(pattern, VICTIM_IDS[pattern.name](victim))
        for method in ("get", "post"):
            response = getattr(client, method)(url)
            if pattern.name in STAFF_ONLY:
                assert response.status_code in (302, 405), (url, method)
                if response.status_code == 302:
                    assert response["Location"].startswith("/login/")
                continue
            assert response.status_code in (404, 405), (url, method, response.status_code)
            if method == "post":
                assert response.status_code == 404 or client.get(url).status_code == 404
            body = response.content.decode(errors="replace")
            assert "Victim Person" not in body and victim["customer"].account not in body
    assert _state(alpha, victim) == before
    # The same URLs do open for their owner (the 404s above are not everyone's).
    owner = alpha.client()
    sign_in(alpha, owner, VICTIM)
    for name in ("pay_status", "ticket", "ticket_photo", "plan_preview"):
        pattern = next(p for p in routes_with_ids() if p.name == name)
        url = _url(pattern, VICTIM_IDS[name](victim))
        assert owner.get(url).status_code == 200, url
    # The lists show none of the victim's rows either.
    for path in ("/my/", "/my/invoices/", "/my/plan/", "/my/tickets/", "/my/settings/"):
        body = client.get(path).content.decode()
        assert "Victim Person" not in body and "My router is off" not in body, path


def test_ids_from_another_isp_are_not_found_and_its_session_is_no_use(
    alpha, beta, make_customer, victim
):
    from subscribers import services as subscribers

    with tenant_context(beta.isp):
        subscribers.create_customer(actor="test", name="Beta Person", phone="0712345601")
    before = _state(alpha, victim)
    client = beta.client()
    sign_in(beta, client, ATTACKER)
    assert "Beta Person" in client.get("/my/").content.decode()
    for pattern in routes_with_ids():
        if pattern.name in STAFF_ONLY:
            continue
        url = _url(pattern, VICTIM_IDS[pattern.name](victim))
        statuses = {client.get(url).status_code, client.post(url).status_code}
        assert statuses <= {404, 405} and 404 in statuses, (url, statuses)
    assert _state(alpha, victim) == before
    # alpha's portal session cookie means nothing on beta's host, and the reverse.
    alpha_client = alpha.client()
    sign_in(alpha, alpha_client, VICTIM)
    cookie = alpha_client.cookies
    on_beta = beta.client()
    on_beta.cookies = cookie
    page = on_beta.get("/my/").content.decode()
    assert "Sign in to your account" in page and "Victim Person" not in page
