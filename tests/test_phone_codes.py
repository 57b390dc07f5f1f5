"""Codes sent by SMS to prove a phone (ispops.messaging.phone_codes), as the portal and
the captive page both use them: a code of one purpose never proves the other, wrong
entries use tries, expired and used codes are dead, only a hash is stored, a phone
with nothing to prove gets an unsent row, the limits hold in order and under
concurrent requests, and the SMS keeps the code even when an edited template lost it.
Also notify_phone(), the SMS to a bare number, and the opt-out registry it asks."""

import datetime
import threading

import pytest
from django.db import connection, connections, transaction
from django_tenants.utils import tenant_context

from ispops.messaging import phone_codes, preferences
from ispops.messaging import services as messaging
from ispops.messaging.models import Message, MessageTemplate, NotificationPreference, PhoneCode
from ispops.messaging.phone_codes import HOTSPOT, PORTAL, Outcome
from subscribers import services as subscribers
from tests.portal.conftest import code_in

NOW = datetime.datetime(2026, 3, 2, 9, 0, tzinfo=datetime.UTC)
PHONE = "254712300001"
LIMITS = phone_codes.Limits(
    resend_wait_seconds=30, codes_per_phone_per_day=5, code_length=8, code_minutes=10
)
SMS = {PORTAL: phone_codes.Sms("portal_code"), HOTSPOT: phone_codes.Sms("hotspot_phone_code")}


def issue(phone=PHONE, *, purpose=PORTAL, sms=None, send=True, limits=LIMITS, now=NOW, **kw):
    sms = sms or SMS[purpose]
    return phone_codes.issue(
        phone, purpose=purpose, sms=sms, send=send, limits=limits, now=now, **kw
    )


def check(code, phone=PHONE, *, purpose=PORTAL, tries=5, now=NOW, **kwargs):
    with transaction.atomic():
        return phone_codes.check(phone, code, purpose=purpose, tries=tries, now=now, **kwargs)


def sent_code(phone=PHONE, key="portal_code") -> str:
    message = Message.objects.filter(to=phone, template_key=key).order_by("-id").first()
    assert message is not None, f"no {key} SMS to {phone}"
    return code_in(message.body)


def wrong(code: str) -> str:
    return "".join("1" if ch != "1" else "2" for ch in code)


def test_a_code_of_one_purpose_never_proves_the_other(in_alpha):
    assert issue(purpose=PORTAL).outcome == Outcome.ISSUED
    portal = sent_code()
    # No hotspot code for the phone: the portal's row is not even looked at.
    assert check(portal, purpose=HOTSPOT).outcome == Outcome.DEAD
    assert issue(purpose=HOTSPOT).outcome == Outcome.ISSUED  # its own resend wait
    hotspot = sent_code(key="hotspot_phone_code")
    assert hotspot != portal  # 8 digits each: a clash is one in 10**8
    assert check(portal, purpose=HOTSPOT).outcome == Outcome.WRONG
    assert check(hotspot, purpose=PORTAL).outcome == Outcome.WRONG
    # Each still proves its own purpose.
    assert check(portal, purpose=PORTAL).outcome == Outcome.RIGHT
    assert check(hotspot, purpose=HOTSPOT).outcome == Outcome.RIGHT
    # The same digits hash differently per purpose, phone and ISP.
    hashes = {
        phone_codes.code_hash(PORTAL, PHONE, "123456"),
        phone_codes.code_hash(HOTSPOT, PHONE, "123456"),
        phone_codes.code_hash(PORTAL, "254712300002", "123456"),
    }
    assert len(hashes) == 3


def test_wrong_codes_use_tries_and_the_code_dies_after_the_last(in_alpha):
    issue()
    code = sent_code()
    answers = [check(wrong(code), tries=3) for _ in range(3)]
    assert [(a.outcome, a.tries_left) for a in answers] == [
        (Outcome.WRONG, 2),
        (Outcome.WRONG, 1),
        (Outcome.WRONG, 0),
    ]
    assert check(code, tries=3).outcome == Outcome.DEAD
    assert PhoneCode.objects.get(phone=PHONE).tries == 3


def test_spaces_and_dashes_in_a_typed_code_are_ignored(in_alpha):
    issue()
    code = sent_code()
    assert check(f" {code[:4]}-{code[4:]} ").outcome == Outcome.RIGHT


def test_an_expired_code_is_dead(in_alpha):
    issue()
    code = sent_code()
    expires = NOW + datetime.timedelta(minutes=LIMITS.code_minutes)
    assert check(code, now=expires).outcome == Outcome.DEAD
    assert check(code, now=expires - datetime.timedelta(seconds=1)).outcome == Outcome.RIGHT


def test_a_used_code_is_dead(in_alpha):
    issue()
    code = sent_code()
    assert check(code).outcome == Outcome.RIGHT
    assert check(code).outcome == Outcome.DEAD
    assert PhoneCode.objects.get(phone=PHONE).used_at == NOW


def test_only_the_newest_code_works(in_alpha):
    issue()
    first = sent_code()
    issue(now=NOW + datetime.timedelta(seconds=31))
    second = sent_code()
    assert first != second
    assert check(first).outcome == Outcome.WRONG
    assert check(second).outcome == Outcome.RIGHT


def test_a_right_code_the_caller_turns_down_counts_as_a_wrong_one(in_alpha):
    issue()
    code = sent_code()
    answer = check(code, accept=lambda: False)
    assert (answer.outcome, answer.tries_left) == (Outcome.WRONG, 4)
    assert PhoneCode.objects.get(phone=PHONE).used_at is None


def test_the_stored_hash_never_holds_the_code(in_alpha):
    issue()
    code = sent_code()
    row = PhoneCode.objects.get(phone=PHONE)
    assert code not in row.code_hash and len(row.code_hash) == 64
    assert row.code_hash == phone_codes.code_hash(PORTAL, PHONE, code)


def test_a_phone_with_nothing_to_prove_gets_an_unsent_row_that_never_matches(in_alpha):
    answer = issue(send=False, ip="10.5.50.7", mac="02:00:00:00:00:01", purpose=HOTSPOT)
    assert answer.outcome == Outcome.ISSUED  # the same answer as a sent code
    row = PhoneCode.objects.get(phone=PHONE)
    assert (row.sent, row.purpose) == (False, HOTSPOT)
    assert (row.ip, row.mac) == ("10.5.50.7", "02:00:00:00:00:01")
    assert not Message.objects.filter(to=PHONE).exists()
    # It counts against the limits like a sent one.
    assert issue(send=False, purpose=HOTSPOT).outcome == Outcome.WAIT
    # Whatever is typed fails like a wrong code and uses a try.
    assert check("12345678", purpose=HOTSPOT).outcome == Outcome.WRONG
    assert PhoneCode.objects.get(phone=PHONE).tries == 1


def test_the_limits_answer_in_order_address_wait_phone(in_alpha):
    limits = phone_codes.Limits(
        resend_wait_seconds=30,
        codes_per_phone_per_day=2,
        code_length=6,
        code_minutes=10,
        codes_per_ip_per_day=3,
    )
    ip = "10.5.50.9"
    assert issue(limits=limits, ip=ip).outcome == Outcome.ISSUED
    waited = issue(limits=limits, ip=ip, now=NOW + datetime.timedelta(seconds=10))
    assert (waited.outcome, waited.wait_seconds) == (Outcome.WAIT, 20)
    later = NOW + datetime.timedelta(seconds=31)
    assert issue(limits=limits, ip=ip, now=later).outcome == Outcome.ISSUED
    # Two codes today: the phone's cap, past the wait.
    much_later = NOW + datetime.timedelta(minutes=5)
    assert issue(limits=limits, ip=ip, now=much_later).outcome == Outcome.PHONE_LIMIT
    # A third code from the address (another phone) fills its cap; the next is refused
    # before the phone is looked at.
    other = "254712300009"
    assert issue(other, limits=limits, ip=ip, now=much_later).outcome == Outcome.ISSUED
    third = "254712300010"
    assert issue(third, limits=limits, ip=ip, now=much_later).outcome == Outcome.IP_LIMIT
    # The portal caps the address itself: no count here without codes_per_ip_per_day.
    assert issue(third, ip=ip, now=much_later).outcome == Outcome.ISSUED
    # A rolling day after the last of them, the phone and the address may ask again.
    next_day = much_later + datetime.timedelta(hours=24, seconds=1)
    assert issue(limits=limits, ip=ip, now=next_day).outcome == Outcome.ISSUED


def test_the_limits_of_one_purpose_do_not_count_the_other(in_alpha):
    one_a_day = phone_codes.Limits(
        resend_wait_seconds=10, codes_per_phone_per_day=1, code_length=6, code_minutes=10
    )
    assert issue(purpose=PORTAL, limits=one_a_day).outcome == Outcome.ISSUED
    assert issue(purpose=HOTSPOT, limits=one_a_day).outcome == Outcome.ISSUED
    later = NOW + datetime.timedelta(minutes=1)
    assert issue(purpose=PORTAL, limits=one_a_day, now=later).outcome == Outcome.PHONE_LIMIT


# --- the SMS -----------------------------------------------------------------------------


def test_the_hotspot_code_is_a_message_template_in_the_sign_in_kind(in_alpha):
    issue(
        purpose=HOTSPOT, sms=phone_codes.Sms("hotspot_phone_code", {"why": "start your free trial"})
    )
    message = Message.objects.get(to=PHONE)
    code = PhoneCode.objects.get(phone=PHONE)
    assert message.template_key == "hotspot_phone_code" and message.customer is None
    assert "Alpha Net Wi-Fi code to start your free trial is" in message.body
    assert code.code_hash == phone_codes.code_hash(HOTSPOT, PHONE, code_in(message.body))
    assert preferences.kind_of("hotspot_phone_code").key == "sign_in"


def test_an_edited_template_is_used_but_one_that_lost_the_code_sends_the_default(in_alpha):
    MessageTemplate.objects.create(
        key="hotspot_phone_code", channel="sms", body="Karibu! Your code: {{ code }}."
    )
    issue(purpose=HOTSPOT)
    assert Message.objects.get(to=PHONE).body.startswith("Karibu! Your code: ")
    MessageTemplate.objects.filter(key="hotspot_phone_code").update(body="Karibu {{ isp_name }}")
    other = "254712300002"
    issue(other, purpose=HOTSPOT)
    body = Message.objects.get(to=other).body
    assert body.startswith("Hello, your Alpha Net Wi-Fi code to ")
    assert code_in(body) is not None


def test_a_customers_code_names_them_and_goes_to_the_typed_phone(in_alpha):
    customer = subscribers.create_customer(
        actor="test", name="Akinyi Otieno", phone="0712300003", alt_phone="0112300004"
    )
    sms = phone_codes.Sms("portal_code", customer=customer, related="portal sign-in")
    phone_codes.issue("254112300004", purpose=PORTAL, sms=sms, send=True, limits=LIMITS, now=NOW)
    message = Message.objects.get(template_key="portal_code")
    assert (message.to, message.customer, message.related) == (
        "254112300004",
        customer,
        "portal sign-in",
    )
    assert message.body.startswith("Akinyi Otieno, your Alpha Net sign-in code is ")


# --- notify_phone and the opt-out registry ------------------------------------------------


def test_notify_phone_sends_codes_whatever_a_planted_preference_says(in_alpha):
    customer = subscribers.create_customer(actor="test", name="Baraka", phone="0712300005")
    NotificationPreference.objects.create(
        customer=customer, kind="sign_in", channel="sms", allowed=False
    )
    message = messaging.notify_phone(
        "0712300005", "portal_code", {"code": "4821", "minutes": 10}, customer=customer
    )
    assert (message.state, message.to) == (Message.State.QUEUED, "254712300005")


def test_notify_phone_respects_a_customers_opt_out_and_waits_for_a_yes_from_strangers(
    in_alpha,
):
    customer = subscribers.create_customer(actor="test", name="Chebet", phone="0712300006")
    preferences.set_preferences(customer, {("reminders", "sms"): False}, actor="test")
    context = {"amount": "KES 100", "due_on": "today", "paybill": "247247"}
    refused = messaging.notify_phone(
        "0712300006", "payment_reminder_before", context, customer=customer
    )
    assert refused.state == Message.State.SKIPPED and "turned off" in refused.error
    # A number that is nobody's customer: reminders go (their default), marketing
    # waits for a yes it cannot give.
    stranger = messaging.notify_phone("0712300007", "payment_reminder_before", context)
    assert stranger.state == Message.State.QUEUED
    offer = messaging.notify_phone(
        "0712300007", "payment_reminder_before", context, kind="marketing"
    )
    assert offer.state == Message.State.SKIPPED and "nobody's customer" in offer.error


def test_notify_phone_logs_a_number_no_gateway_can_use_as_failed(in_alpha):
    message = messaging.notify_phone("12345", "portal_code", {"code": "4821"})
    assert (message.state, message.to) == (Message.State.FAILED, "12345")
    assert message.error


# --- at once ---------------------------------------------------------------------------------


def _in_threads(alpha, calls) -> tuple[list, list]:
    """Run each call in its own thread and connection, all starting at once."""
    barrier = threading.Barrier(len(calls))
    results, errors = [None] * len(calls), []

    def work(i, call):
        try:
            with tenant_context(alpha.isp):
                barrier.wait(timeout=30)
                results[i] = call()
        except Exception as exc:  # reported by the callers' assertions
            errors.append(repr(exc))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results, errors


RACE_PHONES = ("254712399001", "254712399002")
RACE_IP = "10.5.99.1"


@pytest.fixture
def committed_alpha(tenants, django_db_blocker):
    alpha = tenants["alpha"]
    with django_db_blocker.unblock():
        yield alpha
        with tenant_context(alpha.isp):
            PhoneCode.objects.filter(phone__in=RACE_PHONES).delete()
        connection.set_schema_to_public()


def _race(alpha, calls) -> list[Outcome]:
    results, errors = _in_threads(alpha, calls)
    assert errors == []
    return sorted((r.outcome for r in results), key=lambda o: o.value)


@pytest.mark.committed
def test_two_requests_at_once_meet_the_resend_wait(committed_alpha):
    def ask():
        return issue(RACE_PHONES[0], send=False)

    assert _race(committed_alpha, [ask, ask]) == [Outcome.ISSUED, Outcome.WAIT]
    with tenant_context(committed_alpha.isp):
        assert PhoneCode.objects.filter(phone=RACE_PHONES[0]).count() == 1


@pytest.mark.committed
def test_two_requests_at_once_meet_the_daily_cap_per_phone(committed_alpha):
    no_wait = phone_codes.Limits(
        resend_wait_seconds=0, codes_per_phone_per_day=1, code_length=6, code_minutes=10
    )

    def ask():
        return issue(RACE_PHONES[0], send=False, limits=no_wait)

    assert _race(committed_alpha, [ask, ask]) == [Outcome.ISSUED, Outcome.PHONE_LIMIT]
    with tenant_context(committed_alpha.isp):
        assert PhoneCode.objects.filter(phone=RACE_PHONES[0]).count() == 1


@pytest.mark.committed
def test_two_phones_at_once_meet_the_daily_cap_per_address(committed_alpha):
    one_per_ip = phone_codes.Limits(
        resend_wait_seconds=30,
        codes_per_phone_per_day=5,
        code_length=6,
        code_minutes=10,
        codes_per_ip_per_day=1,
    )
    calls = [
        lambda phone=phone: issue(phone, purpose=HOTSPOT, send=False, limits=one_per_ip, ip=RACE_IP)
        for phone in RACE_PHONES
    ]
    assert _race(committed_alpha, calls) == [Outcome.IP_LIMIT, Outcome.ISSUED]
    with tenant_context(committed_alpha.isp):
        assert PhoneCode.objects.filter(ip=RACE_IP).count() == 1


def test_codes_past_every_limits_window_are_forgotten_and_todays_kept(in_alpha, settings):
    issue(now=NOW - datetime.timedelta(days=3))
    issue("254712000999", now=NOW)
    assert phone_codes.forget(NOW) == 1
    assert list(PhoneCode.objects.values_list("phone", flat=True)) == ["254712000999"]
    assert phone_codes.forget(NOW) == 0
    entry = settings.CELERY_BEAT_SCHEDULE["forget-phone-codes"]
    assert entry["args"] == ["ispops.messaging.tasks.forget_phone_codes"]
