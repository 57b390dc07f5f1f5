"""Portal settings: contact details the subscriber may change (audited, validated), and
notification choices that notify() and notify_many() honour, for the kinds the law lets
a customer refuse only; staff viewing as the customer change nothing."""

import pytest
from django_tenants.utils import tenant_context

from ispops.audit.models import AuditEntry
from ispops.messaging import preferences
from ispops.messaging import services as messaging
from ispops.messaging.models import Message, NotificationPreference
from subscribers.models import Customer
from tests.portal.conftest import sign_in

PHONE = "254712345601"
REMINDER = {"amount": "KES 2,500.00", "due_on": "5 Mar", "paybill": "247247"}


@pytest.fixture
def subscriber(alpha, make_customer):
    customer = make_customer("0712345601", name="Akinyi Otieno", email="akinyi@example.com")
    client = alpha.client()
    sign_in(alpha, client, PHONE)
    return customer, client


def everything_on():
    return {"reminders_sms": "on", "reminders_email": "on"}


# --- contact details ----------------------------------------------------------------


def test_the_settings_page_shows_contact_password_and_choices(subscriber):
    _customer, client = subscriber
    page = client.get("/my/settings/").content.decode()
    assert "akinyi@example.com" in page and 'href="/my/password/"' in page
    assert "Payment and renewal reminders" in page and "Offers and news" in page
    assert 'name="reminders_sms"' in page and 'name="marketing_email"' in page
    for always in ("Sign-in codes", "Invoices and payment receipts", "Suspension and outage"):
        assert always in page
    assert page.count("always sent") >= 4
    assert 'name="money_sms"' not in page and 'name="sign_in_sms"' not in page


def test_contact_details_change_and_are_audited(alpha, subscriber):
    customer, client = subscriber
    response = client.post(
        "/my/settings/", {"email": "new@example.com", "alt_phone": "0722 000 111"}
    )
    assert response.status_code == 302 and response["Location"] == "/my/settings/"
    with tenant_context(alpha.isp):
        customer.refresh_from_db()
        assert customer.email == "new@example.com" and customer.alt_phone == "254722000111"
        entry = AuditEntry.objects.filter(
            model="subscribers.customer", object_id=str(customer.pk)
        ).latest("id")
        assert entry.actor_label == f"Akinyi Otieno (customer {customer.account})"
        assert "email" in entry.changes and "alt_phone" in entry.changes
        # The main phone is told: a phone taken over cannot quietly add itself.
        notice = Message.objects.get(customer=customer, template_key="portal_contact_changed")
        assert notice.to == customer.phone and notice.channel == "sms"
        assert "other phone now 0722•••111" in notice.body and "email changed" in notice.body
    assert "Your contact details are saved" in client.get("/my/settings/").content.decode()


@pytest.mark.parametrize(
    "data, error",
    [
        ({"email": "not-an-email", "alt_phone": ""}, "valid email"),
        ({"email": "", "alt_phone": "12345"}, ""),
        ({"email": "", "alt_phone": "0712345601"}, "already your main number"),
        ({"email": "a@b.co", "alt_phone": "07\x0012345678"}, ""),
        ({"email": "x" * 250 + "@example.com", "alt_phone": ""}, ""),
    ],
)
def test_bad_contact_details_are_a_form_error_and_nothing_changes(alpha, subscriber, data, error):
    customer, client = subscriber
    response = client.post("/my/settings/", data)
    assert response.status_code == 400
    page = response.content.decode()
    assert 'class="errorlist' in page and error in page
    with tenant_context(alpha.isp):
        fresh = Customer.objects.get(pk=customer.pk)
        assert (fresh.email, fresh.alt_phone) == ("akinyi@example.com", "")


def test_the_phone_signed_in_with_cannot_be_changed_away(alpha, make_customer):
    customer = make_customer("0722000001", alt_phone="0712345601", name="Shop Account")
    client = alpha.client()
    sign_in(alpha, client, PHONE)
    response = client.post("/my/settings/", {"email": "", "alt_phone": "0733000001"})
    assert response.status_code == 400
    assert "You signed in with this number" in response.content.decode()
    with tenant_context(alpha.isp):
        assert Customer.objects.get(pk=customer.pk).alt_phone == PHONE
    # Keeping it (typed any way) is fine.
    assert (
        client.post("/my/settings/", {"email": "", "alt_phone": "0712 345 601"}).status_code == 302
    )
    assert client.get("/my/").status_code == 200


# --- notification choices -------------------------------------------------------------


def test_turning_off_sms_reminders_skips_them_in_notify_and_notify_many(alpha, subscriber):
    customer, client = subscriber
    response = client.post("/my/settings/notifications/", {"reminders_email": "on"})
    assert response.status_code == 302
    with tenant_context(alpha.isp):
        assert not preferences.allows(customer, "reminders", "sms")
        assert preferences.allows(customer, "reminders", "email")
        entry = AuditEntry.objects.filter(object_id=str(customer.pk)).latest("id")
        assert entry.changes == {"notifications:reminders:sms": [True, False]}

        one = messaging.notify(
            customer, "payment_reminder_before", REMINDER, channels=("sms", "email")
        )
        assert [(m.channel, m.state) for m in one] == [("sms", "skipped"), ("email", "queued")]
        assert "turned off payment and renewal reminders by SMS" in one[0].error

        many = messaging.notify_many(
            [(customer, "payment_reminder_after", REMINDER, "r1")], channels=("sms", "email")
        )
        assert [(m.channel, m.state) for m in many] == [("sms", "skipped"), ("email", "queued")]
        # Service-critical messages go whatever the choice.
        invoice = messaging.notify(customer, "suspended_soft", REMINDER)
        assert invoice[0].state == Message.State.QUEUED


def test_notify_many_reads_choices_in_one_query_per_kind_and_channel(
    alpha, subscriber, make_customer, django_assert_max_num_queries
):
    customer, _client = subscriber
    with tenant_context(alpha.isp):
        others = [make_customer(f"07220001{n:02d}", name=f"Other {n}") for n in range(5)]
        preferences.set_preferences(customer, {("reminders", "sms"): False}, actor="test")
        items = [(c, "payment_reminder_before", REMINDER, "") for c in [customer, *others]]
        items.append((customer, "invoice_issued", {}, ""))
        # template lookups (2) + one choice query + the insert
        with django_assert_max_num_queries(5):
            rows = messaging.notify_many(items)
        states = [m.state for m in rows]
        assert states == ["skipped"] + ["queued"] * 5 + ["queued"]
        # A mandatory message alone asks no choice at all.
        with django_assert_max_num_queries(2):
            messaging.notify_many([(customer, "invoice_issued", {}, "")])


def test_marketing_waits_for_a_yes(alpha, subscriber):
    customer, client = subscriber
    with tenant_context(alpha.isp):
        assert not preferences.allows(customer, "marketing", "sms")
    client.post("/my/settings/notifications/", {**everything_on(), "marketing_sms": "on"})
    with tenant_context(alpha.isp):
        assert preferences.allows(customer, "marketing", "sms")
        assert not preferences.allows(customer, "marketing", "email")
        # A campaign names the kind; the same check applies.
        sent = messaging.notify(
            customer,
            "ticket_comment",
            {"comment": "New 20M plan"},
            channels=("sms", "email"),
            kind="marketing",
        )
        assert [m.state for m in sent] == ["queued", "skipped"]
        # A kind nobody registered is refused outright, not sent.
        with pytest.raises(LookupError):
            messaging.notify(customer, "ticket_comment", {}, kind="promo")
        with pytest.raises(LookupError):
            messaging.notify_many([(customer, "ticket_comment", {}, "")], kind="promo")


def test_a_mandatory_kind_cannot_be_turned_off_even_by_a_forged_post(alpha, subscriber):
    customer, client = subscriber
    forged = {**everything_on(), "money_sms": "", "sign_in_sms": "off", "service_email": "0"}
    response = client.post("/my/settings/notifications/", forged)
    assert response.status_code == 302
    with tenant_context(alpha.isp):
        assert not NotificationPreference.objects.filter(customer=customer).exists()
        with pytest.raises(preferences.PreferenceError):
            preferences.set_preferences(customer, {("money", "sms"): False}, actor="test")
        with pytest.raises(preferences.PreferenceError):
            preferences.set_preferences(customer, {("nonsense", "sms"): False}, actor="test")
        # Even a row planted in the table is not consulted for a mandatory kind.
        NotificationPreference.objects.create(
            customer=customer, kind="money", channel="sms", allowed=False
        )
        sent = messaging.notify(customer, "payment_received", {"amount": "KES 1"})
        assert sent[0].state == Message.State.QUEUED


def test_every_message_template_belongs_to_one_kind():
    listed = [key for kind in preferences.KINDS for key in kind.template_keys]
    assert len(listed) == len(set(listed))
    assert set(listed) == set(messaging.DEFAULT_TEMPLATES)


def test_staff_viewing_as_the_customer_change_nothing(alpha, make_customer):
    customer = make_customer("0712345601", name="Akinyi Otieno", email="akinyi@example.com")
    staff = alpha.client(alpha.support)
    staff.post(f"/my/as/{customer.pk}/")
    assert staff.get("/my/settings/").status_code == 200
    contact = staff.post("/my/settings/", {"email": "staff@example.com", "alt_phone": ""})
    prefs = staff.post("/my/settings/notifications/", {})
    assert contact.status_code == prefs.status_code == 403
    with tenant_context(alpha.isp):
        assert Customer.objects.get(pk=customer.pk).email == "akinyi@example.com"
        assert not NotificationPreference.objects.filter(customer=customer).exists()


def test_signed_out_visitors_get_no_settings(alpha):
    client = alpha.client()
    assert client.get("/my/settings/").status_code in (302, 403)
    assert client.post("/my/settings/notifications/", {}).status_code in (302, 403)
