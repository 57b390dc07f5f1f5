"""Portal sign-in: by SMS code (read from the message log) and by password, every code
limit and lock-out at frozen times, and the same answer for phones nobody has."""

from datetime import timedelta

import time_machine
from django.conf import settings
from django.utils import timezone
from django_tenants.utils import tenant_context

from ispops.messaging.models import Message, PhoneCode
from portal.models import PortalSettings
from tests.portal.conftest import last_code, sign_in

PHONE = "254712345601"


def test_code_sign_in_end_to_end_reaches_home(alpha, make_customer):
    customer = make_customer("0712345601", name="Akinyi Otieno")
    client = alpha.client()
    response = client.post("/my/", {"phone": "0712 345 601"})
    assert response.status_code == 302 and response["Location"] == "/my/code/"
    before = client.cookies[settings.SESSION_COOKIE_NAME].value
    page = client.get("/my/code/").content.decode()
    assert "a code is on its way" in page
    code = last_code(alpha.isp, PHONE)
    assert code is not None
    with tenant_context(alpha.isp):
        # Only a hash is stored.
        assert code not in PhoneCode.objects.get(phone=PHONE, purpose="portal").code_hash

    response = client.post("/my/code/", {"code": code})
    assert response.status_code == 302 and response["Location"] == "/my/"
    assert client.cookies[settings.SESSION_COOKIE_NAME].value != before  # key rotated
    home = client.get("/my/").content.decode()
    assert "Akinyi Otieno" in home and customer.account in home
    assert "Home 10M" in home and "Alpha Net" in home
    assert 'href="/my/pay/"' in home
    assert len(home.encode()) < 60_000


def test_every_kenyan_form_of_the_number_and_the_alternative_phone_work(alpha, make_customer):
    make_customer("0712345601", alt_phone="0112345602")
    with time_machine.travel(timezone.now(), tick=False) as clock:
        for typed in ("+254 712 345 601", "254712345601", "712345601"):
            response = alpha.client().post("/my/", {"phone": typed})
            assert response.status_code == 302
            clock.shift(timedelta(seconds=31))
        # A code for the alternative phone goes to that phone, not the main one.
        client = alpha.client()
        assert sign_in(alpha, client, "254112345602", "0112 345 602")["Location"] == "/my/"
    with tenant_context(alpha.isp):
        assert Message.objects.filter(template_key="portal_code", to=PHONE).count() == 3


def test_unknown_phone_gets_the_same_answer_and_no_sms(alpha, make_customer):
    make_customer("0712345601")
    known, unknown = alpha.client(), alpha.client()
    a = known.post("/my/", {"phone": "0712345601"})
    b = unknown.post("/my/", {"phone": "0712345699"})
    assert (a.status_code, a["Location"]) == (b.status_code, b["Location"])
    page_a = known.get("/my/code/").content.decode().replace("601", "XXX")
    page_b = unknown.get("/my/code/").content.decode().replace("699", "XXX")
    assert _strip_tokens(page_a) == _strip_tokens(page_b)
    with tenant_context(alpha.isp):
        assert not Message.objects.filter(to="254712345699").exists()
        assert PhoneCode.objects.filter(phone="254712345699", purpose="portal", sent=False).exists()
    # Any code typed for the unknown phone fails like a wrong one.
    response = unknown.post("/my/code/", {"code": "123456"})
    assert "not right" in response.content.decode()


def _strip_tokens(page: str) -> str:
    import re

    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", page)


def test_resend_waits_30_seconds(alpha, make_customer):
    make_customer("0712345601")
    client = alpha.client()
    with time_machine.travel(timezone.now(), tick=False) as clock:
        client.post("/my/", {"phone": "0712345601"})
        clock.shift(timedelta(seconds=10))
        response = client.post("/my/", {"phone": "0712345601"})
        assert response["Location"] == "/my/code/"
        assert "another in 20 seconds" in client.get("/my/code/").content.decode()
        with tenant_context(alpha.isp):
            assert Message.objects.filter(to=PHONE).count() == 1
        clock.shift(timedelta(seconds=21))
        client.post("/my/", {"phone": "0712345601"})
        with tenant_context(alpha.isp):
            assert Message.objects.filter(to=PHONE).count() == 2


def test_five_wrong_tries_kill_the_code(alpha, make_customer):
    make_customer("0712345601")
    client = alpha.client()
    client.post("/my/", {"phone": "0712345601"})
    code = last_code(alpha.isp, PHONE)
    wrong = "000000" if code != "000000" else "111111"
    for left in (4, 3, 2, 1):
        page = client.post("/my/code/", {"code": wrong}).content.decode()
        assert f"{left} tries left" in page
    assert "no longer works" in client.post("/my/code/", {"code": wrong}).content.decode()
    # The right code is now refused too.
    response = client.post("/my/code/", {"code": code})
    assert response.status_code == 400 and "no longer works" in response.content.decode()
    assert "portal" not in client.session


def test_a_code_expires(alpha, make_customer):
    make_customer("0712345601")
    client = alpha.client()
    with time_machine.travel(timezone.now(), tick=False) as clock:
        client.post("/my/", {"phone": "0712345601"})
        clock.shift(timedelta(minutes=10, seconds=1))
        response = client.post("/my/code/", {"code": last_code(alpha.isp, PHONE)})
        assert "no longer works" in response.content.decode()


def test_five_codes_per_phone_per_day(alpha, make_customer):
    make_customer("0712345601")
    with time_machine.travel(timezone.now(), tick=False) as clock:
        for _ in range(5):
            assert alpha.client().post("/my/", {"phone": "0712345601"}).status_code == 302
            clock.shift(timedelta(seconds=31))
        response = alpha.client().post("/my/", {"phone": "0712345601"})
        assert response.status_code == 429
        assert "Too many codes for this number" in response.content.decode()
        # The same for a phone nobody has, so the limit tells nothing.
        for _ in range(5):
            alpha.client().post("/my/", {"phone": "0712345699"})
            clock.shift(timedelta(seconds=31))
        assert alpha.client().post("/my/", {"phone": "0712345699"}).status_code == 429
        clock.shift(timedelta(hours=24))
        assert alpha.client().post("/my/", {"phone": "0712345601"}).status_code == 302


def test_per_address_daily_cap_counts_unknown_phones(alpha, make_customer):
    make_customer("0712345601")
    with tenant_context(alpha.isp):
        PortalSettings.objects.update_or_create(pk=1, defaults={"attempts_per_ip_per_day": 5})
    with time_machine.travel(timezone.now(), tick=False) as clock:
        for n in range(5):
            response = alpha.client().post("/my/", {"phone": f"07123457{n:02d}"})
            assert response.status_code == 302
        response = alpha.client().post("/my/", {"phone": "0712345601"})
        assert response.status_code == 429 and "this network" in response.content.decode()
        with tenant_context(alpha.isp):
            assert not Message.objects.filter(to=PHONE).exists()
        # Another address is not capped.
        other = alpha.client()
        assert (
            other.post("/my/", {"phone": "0712345601"}, REMOTE_ADDR="10.9.9.9").status_code == 302
        )
        clock.shift(timedelta(hours=24, seconds=1))
        assert alpha.client().post("/my/", {"phone": "0712345602"}).status_code == 302


def test_bad_phone_is_a_form_error(alpha):
    response = alpha.client().post("/my/", {"phone": "hello"})
    assert response.status_code == 400 and "Kenyan mobile" in response.content.decode()


def test_password_sign_in_after_setting_one(alpha, make_customer):
    make_customer("0712345601", name="Akinyi Otieno")
    client = alpha.client()
    sign_in(alpha, client, PHONE)
    response = client.post(
        "/my/password/", {"password1": "mango-tree-77", "password2": "mango-tree-77"}
    )
    assert response.status_code == 302
    client.post("/my/signout/")
    assert "Sign in to your account" in client.get("/my/").content.decode()

    fresh = alpha.client()
    response = fresh.post(
        "/my/signin/password/", {"phone": "+254712345601", "password": "mango-tree-77"}
    )
    assert response.status_code == 302 and response["Location"] == "/my/"
    assert "Akinyi Otieno" in fresh.get("/my/").content.decode()


def test_wrong_passwords_lock_password_sign_in(alpha, make_customer):
    make_customer("0712345601")
    client = alpha.client()
    sign_in(alpha, client, PHONE)
    client.post("/my/password/", {"password1": "mango-tree-77", "password2": "mango-tree-77"})
    with time_machine.travel(timezone.now(), tick=False) as clock:
        for _ in range(5):
            response = alpha.client().post(
                "/my/signin/password/", {"phone": "0712345601", "password": "guess-1234"}
            )
            assert "Phone number or password is wrong" in response.content.decode()
        response = alpha.client().post(
            "/my/signin/password/", {"phone": "0712345601", "password": "mango-tree-77"}
        )
        assert "Too many wrong passwords" in response.content.decode()
        clock.shift(timedelta(minutes=16))
        response = alpha.client().post(
            "/my/signin/password/", {"phone": "0712345601", "password": "mango-tree-77"}
        )
        assert response.status_code == 302


def test_password_for_a_phone_without_one_or_unknown_gives_the_same_answer(alpha, make_customer):
    make_customer("0712345601")
    for phone in ("0712345601", "0712345699"):
        response = alpha.client().post(
            "/my/signin/password/", {"phone": phone, "password": "anything-123"}
        )
        assert response.status_code == 400
        assert "Phone number or password is wrong" in response.content.decode()


def test_forms_need_csrf(alpha, make_customer):
    from django.test import Client

    client = Client(HTTP_HOST=alpha.host, enforce_csrf_checks=True)
    assert client.post("/my/", {"phone": "0712345601"}).status_code == 403
