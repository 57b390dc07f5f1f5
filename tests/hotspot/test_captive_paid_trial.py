""" "I already paid" and the free trial on the captive page (in alpha, rolled back): a
second device joins a purchase by its M-Pesa code, or by the paying phone proven by an
SMS code (a number alone proves nothing); a phone with nothing bought gets the same
answer and no SMS; unknown M-Pesa codes count towards the lockout; one free trial per
phone per the ISP's period, by SMS code."""

from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.test import Client
from django.utils import timezone

from hotspot import captive, entitlements
from hotspot.models import Entitlement, HotspotSettings, Trial
from ispops.messaging.models import Message, PhoneCode
from network.models import Router
from payments.models import Payment
from tests.portal.conftest import code_in

BUYER = "254712000222"


@pytest.fixture
def router(in_alpha):
    return Router.objects.create(name="paid-ap", host="10.9.0.4", username="api")


def open_as(alpha, router, mac: str, ip: str = "10.5.50.40") -> Client:
    client = Client(HTTP_HOST=alpha.host)
    query = {"r": captive.router_ref(router.pk), "mac": mac, "ip": ip}
    assert client.get("/hs/?" + urlencode(query)).status_code == 200
    return client


@pytest.fixture
def bought(router, package):
    payment = Payment.objects.create(method="mpesa", reference="UC3PAID777", amount=20)
    return entitlements.grant(
        router=router,
        package=package,
        source=Entitlement.Source.PURCHASE,
        login=captive.phone_login(BUYER),
        payment=payment,
        phone=BUYER,
        mac="02:00:00:00:00:0A",
        now=timezone.now(),
    )


def sms_code(phone: str) -> str | None:
    message = Message.objects.filter(to=phone, template_key="hotspot_phone_code").first()
    return code_in(message.body) if message else None


def test_a_second_device_joins_a_purchase_by_its_mpesa_code(alpha, router, bought):
    laptop = open_as(alpha, router, "02:00:00:00:00:0B")
    response = laptop.post("/hs/paid/", {"paid_with": "uc3 paid 777"})
    assert response.status_code == 302 and response["Location"] == "/hs/connect/"
    bought.refresh_from_db()
    assert bought.mac == "02:00:00:00:00:0B"


def test_a_phone_number_alone_proves_nothing_its_sms_code_does(alpha, router, bought):
    laptop = open_as(alpha, router, "02:00:00:00:00:0B")
    response = laptop.post("/hs/paid/", {"paid_with": "0712 000 222"})
    assert response.status_code == 200
    assert "we sent it a code" in response.content.decode()
    assert bought.mac == "02:00:00:00:00:0A"  # nothing joined yet
    wrong = laptop.post("/hs/paid/", {"phone": BUYER, "code": "000000"})
    assert wrong.status_code == 400 and "That code is wrong" in wrong.content.decode()
    right = laptop.post("/hs/paid/", {"phone": BUYER, "code": sms_code(BUYER)})
    assert right.status_code == 302 and right["Location"] == "/hs/connect/"
    bought.refresh_from_db()
    assert bought.mac == "02:00:00:00:00:0B"


def test_a_phone_with_nothing_bought_gets_the_same_answer_and_no_sms(alpha, router, bought):
    laptop = open_as(alpha, router, "02:00:00:00:00:0B")
    response = laptop.post("/hs/paid/", {"paid_with": "0712 999 111"})
    assert response.status_code == 200
    assert "we sent it a code" in response.content.decode()
    codes = PhoneCode.objects.filter(phone="254712999111", purpose="hotspot")
    assert codes.count() == 1  # limits alike
    assert not Message.objects.filter(to="254712999111").exists()


def test_unknown_mpesa_codes_count_towards_the_lockout(alpha, router, bought):
    laptop = open_as(alpha, router, "02:00:00:00:00:0B")
    statuses = [
        laptop.post("/hs/paid/", {"paid_with": f"UC3NOPE00{n}"}).status_code for n in range(5)
    ]
    assert statuses == [400] * 5
    assert laptop.post("/hs/paid/", {"paid_with": "UC3PAID777"}).status_code == 429


@pytest.fixture
def trial_on(package):
    cfg = HotspotSettings.load()
    cfg.trial_package = package
    cfg.save()
    return package


def test_a_free_trial_once_per_phone_per_period_by_sms_code(alpha, router, trial_on):
    phone = open_as(alpha, router, "02:00:00:00:00:0C")
    assert "Free trial" in phone.get("/hs/").content.decode()
    response = phone.post("/hs/trial/", {"phone": "0712 000 333"})
    assert response.status_code == 200 and "We sent a code" in response.content.decode()
    code = sms_code("254712000333")
    response = phone.post("/hs/trial/", {"phone": "254712000333", "code": code})
    assert response.status_code == 302 and response["Location"] == "/hs/connect/"
    trial = Trial.objects.get(phone="254712000333")
    assert trial.entitlement.source == "trial" and trial.entitlement.login == "0712000333"
    # The same phone on another device, the same week: refused before any SMS.
    other = open_as(alpha, router, "02:00:00:00:00:0D", ip="10.5.50.41")
    again = other.post("/hs/trial/", {"phone": "0712000333"})
    assert again.status_code == 400 and "free trial already" in again.content.decode()
    # After the period, a trial again (the first one over by then).
    days = HotspotSettings.load().trial_every_days
    Trial.objects.update(at=timezone.now() - timedelta(days=days, minutes=1))
    entitlements.end(trial.entitlement, reason="expired", now=timezone.now())
    PhoneCode.objects.update(created_at=timezone.now() - timedelta(minutes=5))
    assert other.post("/hs/trial/", {"phone": "0712000333"}).status_code == 200


def test_a_wrong_trial_code_grants_nothing(alpha, router, trial_on):
    phone = open_as(alpha, router, "02:00:00:00:00:0C")
    phone.post("/hs/trial/", {"phone": "0712000444"})
    response = phone.post("/hs/trial/", {"phone": "254712000444", "code": "12"})
    assert response.status_code == 400 and "wrong" in response.content.decode()
    assert not Trial.objects.exists()


def test_no_trial_package_no_trial(alpha, router):
    phone = open_as(alpha, router, "02:00:00:00:00:0C")
    assert "Free trial" not in phone.get("/hs/").content.decode()
    assert phone.get("/hs/trial/").status_code == 400
