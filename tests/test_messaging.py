"""Messaging: notify() queues SMS and email from templates, workers deliver them through
the console or Africa's Talking (a real HTTP server here), retry with backoff, and the
pages let managers edit templates and gateway settings and staff read the log."""

import datetime
import itertools
import json
import logging
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest
import time_machine
from django.db import connection, transaction
from django.template.loader import render_to_string
from django.utils import timezone
from django_tenants.utils import tenant_context

from ispops.audit.models import AuditEntry
from ispops.messaging import services
from ispops.messaging.models import Message, MessageTemplate, SmsSettings
from ispops.staff.models import Branch, Role, User
from subscribers import services as subscribers
from subscribers.models import Customer

_numbers = itertools.count(1)
START = datetime.datetime(2026, 3, 2, 9, 0, tzinfo=datetime.UTC)
INVOICE = {
    "invoice": {"number": "INV-00007"},
    "amount": Decimal("2500"),
    "due_on": datetime.date(2026, 3, 5),
    "paybill": "247247",
}


def make_customer(name="Wanjiru Kamau", email="wanjiru@example.com", phone=None, **fields):
    n = next(_numbers)
    return subscribers.create_customer(
        actor="test", name=name, phone=phone or f"0722{n:06d}", email=email, **fields
    )


@pytest.fixture
def customer(in_alpha):
    return make_customer()


# --- a local Africa's Talking -------------------------------------------------------


class FakeAfricasTalking:
    """Plays POST /version1/messaging over real HTTP: checks the apiKey header, records
    the form it was sent, and answers with `answer` (the documented JSON)."""

    API_KEY = "atsk_0123456789abcdef"

    def __init__(self):
        self.requests = []
        self.answer = self.success()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                fake.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "form": form}
                )
                if self.path != "/version1/messaging":
                    return self._reply(404, "text/plain", b"Not found")
                if self.headers.get("apiKey") != fake.API_KEY:
                    return self._reply(401, "text/plain", b"The supplied authentication is invalid")
                status, body = fake.answer
                self._reply(status, "application/json", json.dumps(body).encode())

            def _reply(self, status, content_type, body):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    @staticmethod
    def success(number="+254722000001"):
        return 201, {
            "SMSMessageData": {
                "Message": "Sent to 1/1 Total Cost: KES 0.8000",
                "Recipients": [
                    {
                        "statusCode": 101,
                        "number": number,
                        "status": "Success",
                        "cost": "KES 0.8000",
                        "messageId": "ATXid_3b4f0d2e6a",
                    }
                ],
            }
        }

    @staticmethod
    def failure(code=405, status="InsufficientBalance"):
        return 201, {
            "SMSMessageData": {
                "Message": "Sent to 0/1 Total Cost: 0",
                "Recipients": [
                    {"statusCode": code, "number": "+254722000001", "status": status, "cost": "0"}
                ],
            }
        }

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gateway():
    fake = FakeAfricasTalking()
    yield fake
    fake.close()


@pytest.fixture
def africastalking(in_alpha, gateway):
    """alpha sends SMS through the local Africa's Talking."""
    SmsSettings.objects.update_or_create(
        pk=1,
        defaults={
            "backend": SmsSettings.Backend.AFRICASTALKING,
            "username": "alphanet",
            "api_key": FakeAfricasTalking.API_KEY,
            "sender_id": "ALPHANET",
            "base_url": gateway.url,
        },
    )
    return gateway


# --- notify and deliver -------------------------------------------------------------


def test_notify_queues_sms_and_email_that_are_delivered_after_commit(
    customer, django_capture_on_commit_callbacks, mailoutbox, caplog
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        sent = services.notify(
            customer, "invoice_issued", INVOICE, channels=("sms", "email"), related="invoice:7"
        )
    assert len(callbacks) == 2
    sms, email = sent
    assert (sms.channel, sms.to, sms.state) == ("sms", customer.phone, "queued")
    assert sms.body == (
        "Wanjiru Kamau, invoice INV-00007 of KES 2,500.00 is due 5 Mar 2026. "
        f"Paybill 247247, account {customer.account}."
    )
    assert (email.to, email.subject) == ("wanjiru@example.com", "Invoice INV-00007 from Alpha Net")
    assert sms.related == email.related == "invoice:7"

    with caplog.at_level(logging.INFO, logger="ispops.messaging.backends"):
        # The console gateway only logs the SMS: it is not "sent".
        assert services.deliver(sms.pk) == "logged"
    assert services.deliver(email.pk) == "sent"  # the tests' outbox stands for a server

    sms.refresh_from_db()
    assert sms.state == "logged" and sms.attempts == 1 and sms.sent_at is None
    assert sms.provider_id.startswith("console-")
    assert f"SMS to {customer.phone} : Wanjiru Kamau, invoice INV-00007" in caplog.text
    assert [m.subject for m in mailoutbox] == ["Invoice INV-00007 from Alpha Net"]
    assert mailoutbox[0].to == ["wanjiru@example.com"]
    assert mailoutbox[0].from_email.startswith("Alpha Net <noreply@")
    assert "Dear Wanjiru Kamau" in mailoutbox[0].body


def test_sms_with_no_provider_is_not_sent_and_the_log_says_so(alpha):
    """The console gateway (no SMS provider) only prints the text: the log must not
    tell staff the customer got it."""
    with tenant_context(alpha.isp):
        (sms,) = services.notify(make_customer(name="Akinyi Otieno"), "service_restored")
        assert services.deliver(sms.pk) == "logged"
        sms.refresh_from_db()
        assert (sms.state, sms.sent_at) == (Message.State.LOGGED, None)
        assert "No SMS provider" in sms.error
    page = alpha.client(alpha.owner).get("/messages/").content.decode()
    row = page[page.index("Akinyi Otieno") :]
    row = row[: row.index("</tr>")]
    assert "Not sent: no provider" in row and "No SMS provider is set up" in row
    assert ">Sent<" not in row
    logged = alpha.client(alpha.owner).get("/messages/?state=logged").content.decode()
    assert "Akinyi Otieno" in logged


def test_sms_accepted_by_a_provider_is_sent(customer, africastalking):
    (sms,) = services.notify(customer, "service_restored")
    assert services.deliver(sms.pk) == "sent"
    sms.refresh_from_db()
    assert sms.state == Message.State.SENT and sms.sent_at is not None and sms.error == ""


def test_email_printed_by_the_console_backend_is_not_sent(customer, settings, capsys):
    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
    (email,) = services.notify(customer, "service_restored", channels=("email",))
    assert services.deliver(email.pk) == "logged"
    email.refresh_from_db()
    assert email.state == Message.State.LOGGED and "No email server" in email.error


def test_a_rolled_back_transaction_sends_nothing(customer, django_capture_on_commit_callbacks):
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        services.notify(customer, "service_restored")
        raise RuntimeError("payment failed")
    assert callbacks == []
    assert not Message.objects.filter(customer=customer).exists()


def test_customer_without_email_gets_only_the_sms(in_alpha):
    customer = make_customer(email="")
    sent = services.notify(customer, "payment_received", channels=("sms", "email"))
    assert [m.channel for m in sent] == ["sms"]


def test_customer_without_phone_gets_only_the_email(in_alpha):
    customer = Customer.objects.create(account="NP001", name="No Phone", email="np@example.com")
    sent = services.notify(customer, "payment_received", channels=("sms", "email"))
    assert [m.channel for m in sent] == ["email"]


def test_unusable_phone_is_logged_as_failed_and_not_sent(in_alpha):
    customer = Customer.objects.create(account="BP001", name="Bad Phone", phone="12345")
    (message,) = services.notify(customer, "service_restored")
    assert message.state == "failed"
    assert "phone" in message.error
    assert services.deliver(message.pk) == "not due"


def test_sms_text_is_not_html_escaped(in_alpha):
    customer = make_customer(name="O'Brien & Sons")
    (message,) = services.notify(customer, "service_restored")
    assert message.body.startswith("O'Brien & Sons, your internet is back on.")


def test_missing_variables_render_empty(customer):
    (message,) = services.notify(customer, "payment_received", {"amount": Decimal("100")})
    assert "we have received KES 100.00 (ref ). Balance: ." in message.body


# --- templates ------------------------------------------------------------------------


def test_edited_template_overrides_the_default(customer):
    services.save_template(
        "invoice_issued",
        "sms",
        subject="",
        body="Habari {{ customer.name }}, lipa {{ amount }} kwa {{ paybill }}.",
        is_active=True,
        actor="test",
    )
    (message,) = services.notify(customer, "invoice_issued", INVOICE)
    assert message.body == "Habari Wanjiru Kamau, lipa KES 2,500.00 kwa 247247."
    # The email text was not edited: still the default.
    assert services.render("invoice_issued", "email", INVOICE)[0] == "Invoice INV-00007 from"


def test_inactive_edited_template_is_not_used(customer):
    services.save_template(
        "service_restored", "sms", subject="", body="Custom text", is_active=False, actor="test"
    )
    (message,) = services.notify(customer, "service_restored")
    assert message.body.startswith("Wanjiru Kamau, your internet is back on.")


def test_broken_edited_template_falls_back_to_the_default(customer, caplog):
    MessageTemplate.objects.create(
        key="service_restored", channel="sms", body="Hi {% if customer.name %}{{ customer.name }}"
    )
    with caplog.at_level(logging.ERROR, logger="ispops.messaging.services"):
        (message,) = services.notify(customer, "service_restored")
    assert message.body.startswith("Wanjiru Kamau, your internet is back on.")
    assert "service_restored/sms" in caplog.text


def test_saving_a_broken_template_is_refused(in_alpha):
    with pytest.raises(services.MessagingError):
        services.save_template(
            "service_restored", "sms", subject="", body="{% if %}", is_active=True, actor="t"
        )
    assert not MessageTemplate.objects.exists()


def test_every_default_template_renders_with_the_sample_data(in_alpha):
    for key in services.DEFAULT_TEMPLATES:
        for channel in ("sms", "email"):
            subject, body = services.render(key, channel, services.sample_context())
            assert "Wanjiru Kamau" in body
            assert "{" not in body and "}" not in body
            assert bool(subject) == (channel == "email")
        sms = services.render(key, "sms", services.sample_context())[1]
        assert len(sms) <= 160, (key, len(sms))


# --- Africa's Talking over HTTP ---------------------------------------------------------


def test_africastalking_gets_the_documented_request_and_its_id_is_kept(customer, africastalking):
    (message,) = services.notify(customer, "service_restored")
    assert services.deliver(message.pk) == "sent"
    message.refresh_from_db()
    assert (message.state, message.provider_id) == ("sent", "ATXid_3b4f0d2e6a")
    (request,) = africastalking.requests
    assert request["path"] == "/version1/messaging"
    assert request["headers"]["apiKey"] == FakeAfricasTalking.API_KEY
    assert request["headers"]["Accept"] == "application/json"
    assert request["form"] == {
        "username": "alphanet",
        "to": f"+{customer.phone}",
        "message": message.body,
        "from": "ALPHANET",
    }


def test_africastalking_failure_status_is_kept_and_retried_later(customer, africastalking):
    africastalking.answer = FakeAfricasTalking.failure()
    with time_machine.travel(START, tick=False):
        (message,) = services.notify(customer, "service_restored")
        assert services.deliver(message.pk).startswith("retry in 1 min")
    message.refresh_from_db()
    assert (message.state, message.attempts, message.error) == ("queued", 1, "InsufficientBalance")
    assert message.next_attempt_at == START + datetime.timedelta(minutes=1)


def test_africastalking_wrong_api_key_is_an_error(customer, africastalking):
    settings_row = SmsSettings.load()
    settings_row.api_key = "atsk_wrong"
    settings_row.save()
    (message,) = services.notify(customer, "service_restored")
    services.deliver(message.pk)
    message.refresh_from_db()
    assert message.state == "queued"
    assert "HTTP 401" in message.error and "authentication is invalid" in message.error


def test_africastalking_invalid_number_fails_without_retrying(customer, africastalking):
    africastalking.answer = FakeAfricasTalking.failure(403, "InvalidPhoneNumber")
    (message,) = services.notify(customer, "service_restored")
    assert services.deliver(message.pk) == "failed: InvalidPhoneNumber"
    message.refresh_from_db()
    assert (message.state, message.attempts) == ("failed", 1)


def test_unreachable_gateway_is_retried(customer, africastalking):
    africastalking.close()
    (message,) = services.notify(customer, "service_restored")
    services.deliver(message.pk)
    message.refresh_from_db()
    assert message.state == "queued"
    assert "could not be reached" in message.error


def test_africastalking_without_credentials_is_an_error_not_a_crash(customer):
    SmsSettings.objects.create(pk=1, backend="africastalking")
    (message,) = services.notify(customer, "service_restored")
    services.deliver(message.pk)
    message.refresh_from_db()
    assert message.state == "queued" and "not set up" in message.error


def test_failures_back_off_1_5_15_60_minutes_then_fail_after_five(customer, africastalking):
    africastalking.answer = FakeAfricasTalking.failure()
    now = START
    with time_machine.travel(START, tick=False) as clock:
        (message,) = services.notify(customer, "service_restored")
        for attempt, minutes in enumerate([1, 5, 15, 60], start=1):
            services.deliver(message.pk)
            message.refresh_from_db()
            assert (message.state, message.attempts) == ("queued", attempt)
            wait = datetime.timedelta(minutes=minutes)
            assert message.next_attempt_at == now + wait
            # Not due yet: a task arriving early does nothing.
            clock.shift(wait - datetime.timedelta(seconds=1))
            assert services.deliver(message.pk) == "not due"
            clock.shift(datetime.timedelta(seconds=1))
            now += wait
        assert services.deliver(message.pk).startswith("failed")
    message.refresh_from_db()
    assert (message.state, message.attempts) == ("failed", 5)
    assert len(africastalking.requests) == 5


def test_a_second_delivery_of_the_same_message_does_nothing(customer, caplog):
    (message,) = services.notify(customer, "service_restored")
    with caplog.at_level(logging.INFO, logger="ispops.messaging.backends"):
        assert services.deliver(message.pk) == "logged"
        assert services.deliver(message.pk) == "not due"
    assert caplog.text.count("SMS to ") == 1
    message.refresh_from_db()
    assert message.attempts == 1


def test_a_message_another_worker_is_sending_is_not_sent_again(customer):
    (message,) = services.notify(customer, "service_restored")
    Message.objects.filter(pk=message.pk).update(state="sending")
    assert services.deliver(message.pk) == "not due"


# --- the sweep --------------------------------------------------------------------------


def test_sweep_resends_messages_stuck_in_sending(customer):
    with time_machine.travel(START, tick=False) as clock:
        stuck, busy = services.notify(customer, "service_restored") + services.notify(
            customer, "payment_received"
        )
        Message.objects.filter(pk=stuck.pk).update(
            state="sending", claimed_at=START - datetime.timedelta(minutes=11)
        )
        Message.objects.filter(pk=busy.pk).update(
            state="sending", claimed_at=START - datetime.timedelta(minutes=2)
        )
        assert services.sweep_messages() == [stuck.pk]
        stuck.refresh_from_db()
        busy.refresh_from_db()
        assert (stuck.state, stuck.attempts) == ("queued", 1)
        assert busy.state == "sending"
        clock.shift(datetime.timedelta(seconds=1))
        assert services.deliver(stuck.pk) == "logged"


def test_sweep_fails_a_message_whose_worker_died_too_often(customer):
    (message,) = services.notify(customer, "service_restored")
    Message.objects.filter(pk=message.pk).update(
        state="sending", attempts=4, claimed_at=timezone.now() - datetime.timedelta(minutes=30)
    )
    assert services.sweep_messages() == []
    message.refresh_from_db()
    assert (message.state, message.attempts) == ("failed", 5)


def test_sweep_sends_due_retries_and_leaves_new_messages_to_their_own_task(customer):
    with time_machine.travel(START, tick=False) as clock:
        (fresh,) = services.notify(customer, "service_restored")
        (retry,) = services.notify(customer, "payment_received")
        Message.objects.filter(pk=retry.pk).update(
            attempts=1, next_attempt_at=START + datetime.timedelta(minutes=1)
        )
        assert services.sweep_messages() == []
        clock.shift(datetime.timedelta(minutes=1))
        assert services.sweep_messages() == [retry.pk]
        clock.shift(datetime.timedelta(minutes=2))
        assert sorted(services.sweep_messages()) == sorted([fresh.pk, retry.pk])


def test_recent_for_lists_a_customers_latest_messages(customer):
    other = make_customer(name="Otieno Ouma")
    services.notify(other, "service_restored")
    for key in ("invoice_issued", "payment_received", "service_restored"):
        services.notify(customer, key, INVOICE)
    recent = services.recent_for(customer, limit=2)
    assert [m.template_key for m in recent] == ["service_restored", "payment_received"]
    html = render_to_string(
        "messaging/_customer_messages.html",
        {"messages_log": services.recent_for(customer), "customer": customer},
    )
    assert "invoice INV-00007 of KES 2,500.00" in html
    assert "Otieno" not in html


def test_tasks_are_registered_and_swept_every_minute(settings):
    from ispops.celery import app

    assert "ispops.messaging.tasks.send_message" in app.tasks
    entry = settings.CELERY_BEAT_SCHEDULE["sweep-messages"]
    assert entry["args"] == ["ispops.messaging.tasks.sweep_messages"]
    assert entry["schedule"] == 60.0


@pytest.fixture
def broker_down():
    """Celery pointed at a port where no Redis listens, for the length of a test."""
    from ispops.celery import app

    def forget_connections():
        # What Celery itself does in a forked child: pooled connections are dropped
        # and the next send connects to whatever broker_url then says.
        app._pool = None
        app.amqp._producer_pool = None

    url = app.conf.broker_url
    app.conf.broker_url = "redis://127.0.0.1:9/0"
    forget_connections()
    yield
    app.conf.broker_url = url
    forget_connections()


def test_a_broker_failure_never_breaks_the_caller(
    customer, broker_down, django_capture_on_commit_callbacks, caplog
):
    with django_capture_on_commit_callbacks(execute=True):
        (message,) = services.notify(customer, "service_restored")
    assert "not handed to a worker" in caplog.text
    message.refresh_from_db()
    assert message.state == "queued"
    # The sweep finds it once its task is overdue, and stops at the first failed hand-over.
    with time_machine.travel(timezone.now() + datetime.timedelta(minutes=3)):
        assert services.sweep_messages() == []


# --- pages --------------------------------------------------------------------------------

EDIT_URL = "/messages/templates/invoice_issued/sms/"
PAGES = [
    ("/messages/", {Role.OWNER, Role.ADMIN, Role.FINANCE, Role.SUPPORT}),
    ("/messages/templates/", {Role.OWNER, Role.ADMIN}),
    (EDIT_URL, {Role.OWNER, Role.ADMIN}),
    ("/messages/templates/invoice_issued/email/", {Role.OWNER, Role.ADMIN}),
    ("/messages/settings/", {Role.OWNER, Role.ADMIN}),
]


@pytest.mark.parametrize("url,allowed", PAGES)
@pytest.mark.parametrize("role", Role.values)
def test_page_roles(alpha, url, allowed, role):
    response = alpha.client(alpha.people[role]).get(url)
    assert response.status_code == (200 if role in allowed else 403)


def test_technician_cannot_change_templates_or_settings(alpha):
    client = alpha.client(alpha.technician)
    assert client.post(EDIT_URL, {"body": "x", "is_active": "on"}).status_code == 403
    assert client.post(EDIT_URL + "preview/", {"body": "x"}).status_code == 403
    assert client.post(EDIT_URL + "reset/").status_code == 403
    assert client.post("/messages/settings/", {"backend": "console"}).status_code == 403
    with tenant_context(alpha.isp):
        assert not MessageTemplate.objects.exists()
        assert not SmsSettings.objects.filter(backend="console").exists()


def test_unknown_template_is_not_found(alpha):
    client = alpha.client(alpha.owner)
    assert client.get("/messages/templates/no_such_thing/sms/").status_code == 404
    assert client.get("/messages/templates/invoice_issued/fax/").status_code == 404


def test_owner_edits_a_template_and_the_next_message_uses_it(alpha):
    client = alpha.client(alpha.owner)
    response = client.post(
        EDIT_URL,
        {"body": "{{ customer.name }}: pay {{ amount }} by {{ due_on }}", "is_active": "on"},
    )
    assert response.status_code == 302
    with tenant_context(alpha.isp):
        customer = make_customer()
        (message,) = services.notify(customer, "invoice_issued", INVOICE)
        assert message.body == "Wanjiru Kamau: pay KES 2,500.00 by 5 Mar 2026"
        template = MessageTemplate.objects.get(key="invoice_issued", channel="sms")
        entry = AuditEntry.objects.for_object(template).get()
        assert entry.actor == alpha.owner
    page = client.get("/messages/templates/").content.decode()
    assert "Edited" in page


def test_template_with_a_syntax_error_is_not_saved(alpha):
    client = alpha.client(alpha.admin)
    response = client.post(EDIT_URL, {"body": "Hi {% if customer.name %}", "is_active": "on"})
    assert response.status_code == 200
    assert "template error" in response.content.decode()
    with tenant_context(alpha.isp):
        assert not MessageTemplate.objects.exists()


def test_email_template_needs_a_subject(alpha):
    client = alpha.client(alpha.owner)
    url = "/messages/templates/invoice_issued/email/"
    assert client.post(url, {"subject": "", "body": "Hello", "is_active": "on"}).status_code == 200
    response = client.post(
        url, {"subject": "Bill {{ amount }}", "body": "Hello", "is_active": "on"}
    )
    assert response.status_code == 302
    with tenant_context(alpha.isp):
        subject, body = services.render("invoice_issued", "email", {"amount": Decimal("5")})
    assert (subject, body) == ("Bill KES 5.00", "Hello")


def test_preview_renders_the_text_with_sample_data(alpha):
    client = alpha.client(alpha.owner)
    response = client.post(
        EDIT_URL + "preview/", {"body": "Hi {{ customer.name }}, pay {{ amount }}"}
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "Hi Wanjiru Kamau, pay KES 2,500.00" in html
    assert "34 characters, 1 SMS" in html
    assert "<html" not in html
    broken = client.post(EDIT_URL + "preview/", {"body": "{% if %}"}).content.decode()
    assert "errorlist" in broken
    assert client.get(EDIT_URL + "preview/").status_code == 405


def test_edit_page_shows_a_live_preview_of_the_current_text(alpha):
    html = alpha.client(alpha.owner).get(EDIT_URL).content.decode()
    assert 'hx-post="/messages/templates/invoice_issued/sms/preview/"' in html
    assert "Wanjiru Kamau, invoice INV-00042 of KES 2,500.00 is due" in html


def test_reset_goes_back_to_the_default_text(alpha):
    with tenant_context(alpha.isp):
        services.save_template(
            "invoice_issued", "sms", subject="", body="Custom", is_active=True, actor="t"
        )
    client = alpha.client(alpha.owner)
    assert "Reset to default" in client.get(EDIT_URL).content.decode()
    assert client.post(EDIT_URL + "reset/").status_code == 302
    with tenant_context(alpha.isp):
        assert not MessageTemplate.objects.exists()
        assert services.render("invoice_issued", "sms", INVOICE)[1].startswith(", invoice INV")


def test_api_key_is_write_only_and_stored_encrypted(alpha):
    client = alpha.client(alpha.owner)
    secret = "atsk_9f8e7d6c5b4a39281706"
    form = {
        "backend": "africastalking",
        "username": "alphanet",
        "api_key": secret,
        "sender_id": "ALPHANET",
        "base_url": "https://api.sandbox.africastalking.com",
    }
    assert client.post("/messages/settings/", form).status_code == 302
    page = client.get("/messages/settings/").content.decode()
    assert secret not in page and secret[-6:] not in page
    assert "API key: <strong>set</strong>" in page
    # Blank keeps the stored key.
    assert client.post("/messages/settings/", {**form, "api_key": ""}).status_code == 302
    with tenant_context(alpha.isp):
        assert SmsSettings.load().api_key == secret
        with connection.cursor() as cursor:
            cursor.execute("SELECT api_key FROM messaging_smssettings WHERE id = 1")
            stored = cursor.fetchone()[0]
        assert stored and secret not in stored
        history = json.dumps(list(AuditEntry.objects.values_list("changes", flat=True)))
        assert secret not in history


def test_africastalking_settings_need_a_username_and_key(alpha):
    client = alpha.client(alpha.admin)
    response = client.post(
        "/messages/settings/",
        {"backend": "africastalking", "username": "", "api_key": "", "base_url": "https://x.test"},
    )
    assert response.status_code == 200
    assert "needs the API key" in response.content.decode()
    assert "API key: <strong>not set</strong>" in response.content.decode()


def _log_data(alpha):
    with tenant_context(alpha.isp):
        wanjiru = make_customer(phone="0722111222")
        otieno = make_customer(name="Otieno Ouma", email="")
        services.notify(wanjiru, "invoice_issued", INVOICE, channels=("sms", "email"))
        (failed,) = services.notify(otieno, "service_restored")
        Message.objects.filter(pk=failed.pk).update(state="failed", error="InsufficientBalance")
    return wanjiru, otieno


def test_log_filters_by_state_channel_and_search(alpha):
    _log_data(alpha)
    client = alpha.client(alpha.finance)
    page = client.get("/messages/").content.decode()
    assert "Wanjiru Kamau" in page and "Otieno Ouma" in page
    failed = client.get("/messages/?state=failed").content.decode()
    assert "Otieno Ouma" in failed and "Wanjiru Kamau" not in failed
    assert "InsufficientBalance" in failed
    email = client.get("/messages/?channel=email").content.decode()
    assert "wanjiru@example.com" in email and "Otieno" not in email
    by_phone = client.get("/messages/", {"q": "0722 111 222"}).content.decode()
    assert "Wanjiru Kamau" in by_phone and "Otieno" not in by_phone
    by_name = client.get("/messages/", {"q": "otieno"}).content.decode()
    assert "Otieno Ouma" in by_name and "Wanjiru" not in by_name
    fragment = client.get("/messages/?q=otieno", HTTP_HX_REQUEST="true").content.decode()
    assert "Otieno Ouma" in fragment and "<html" not in fragment


def test_log_page_query_count_does_not_grow_with_messages(alpha, django_assert_max_num_queries):
    with tenant_context(alpha.isp):
        for _ in range(30):
            services.notify(make_customer(), "service_restored")
    client = alpha.client(alpha.support)
    with django_assert_max_num_queries(11):
        assert client.get("/messages/").status_code == 200


def test_log_hides_messages_to_customers_of_other_branches(alpha):
    with tenant_context(alpha.isp):
        mine, theirs = (
            Branch.objects.create(name="Mine", code="m"),
            Branch.objects.create(name="Theirs", code="t"),
        )
        services.notify(make_customer(name="Amani Mine", branch=mine), "service_restored")
        services.notify(make_customer(name="Baraka Theirs", branch=theirs), "service_restored")
        limited = User.objects.create_user("limited@alpha.test", "pw-12345678", role=Role.SUPPORT)
        limited.branches.add(mine)
    page = alpha.client(limited).get("/messages/").content.decode()
    assert "Amani Mine" in page and "Baraka Theirs" not in page


def test_another_isp_does_not_see_alphas_messages(alpha, beta):
    _log_data(alpha)
    page = beta.client(beta.owner).get("/messages/").content.decode()
    assert "Wanjiru" not in page and "0 messages" in page


def test_notify_many_renders_once_inserts_in_bulk_and_sends_in_batches(
    africastalking, django_capture_on_commit_callbacks, django_assert_max_num_queries
):
    people = [
        subscribers.create_customer(actor="t", name=f"Bulk {n}", phone=f"07220000{n:02d}")
        for n in range(30)
    ]
    items = [
        (c, "payment_reminder_before", {"amount": Decimal("1500")}, f"inv:{c.pk}") for c in people
    ]
    with django_capture_on_commit_callbacks() as callbacks, django_assert_max_num_queries(6):
        made = services.notify_many(items)
    assert len(made) == 30 and len(callbacks) == 1  # one hand-over for the whole batch
    from ispops.messaging.tasks import send_messages

    assert send_messages([m.pk for m in made]) == 30  # what the worker runs
    sent = Message.objects.filter(related__startswith="inv:")
    assert all(m.state == Message.State.SENT for m in sent)
    assert "Bulk 3" in Message.objects.get(related=f"inv:{people[3].pk}").body
