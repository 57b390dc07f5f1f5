"""Regression tests for the payments findings of the security probe (issue 12): a NUL in
a callback (finding 10), deeply nested and otherwise unusable callback bodies (10),
the callback token in Django's own log lines (7), and `/pay/%00/` with its debug page
(5 and 9). In-process, each test in a transaction that is rolled back."""

import io
import json
import logging
import sys
from contextlib import contextmanager

import pytest
from django.test import RequestFactory
from django.urls import reverse
from django.views.debug import ExceptionReporter

from payments import services
from payments.models import Callback, MpesaSettings, Payment

DB_PASSWORD = "hunter2-db-secret"
DATABASE_URL = f"postgres://ispops:{DB_PASSWORD}@db.internal:5432/ispops"


@pytest.fixture
def paths(in_alpha):
    return services.callback_paths(MpesaSettings.load())


def confirmation(receipt: str, **fields) -> dict:
    return {
        "TransactionType": "Pay Bill",
        "TransID": receipt,
        "TransTime": "20260301120000",
        "TransAmount": "750.00",
        "BusinessShortCode": "174379",
        "BillRefNumber": "NOSUCH-1",
        "MSISDN": "2547 ***** 126",
        "FirstName": "JANE",
        "LastName": "DOE",
        **fields,
    }


def post(alpha, path, body: bytes):
    return alpha.client().post(path, data=body, content_type="application/json")


# --- finding 10 -----------------------------------------------------------------------


def test_a_nul_in_the_payer_name_still_makes_the_payment(alpha, paths):
    body = json.dumps(confirmation("UCN0NUL001", FirstName="JA\x00NE")).encode()
    response = post(alpha, paths["confirmation"], body)

    assert response.status_code == 200
    assert response.json() == {"ResultCode": 0, "ResultDesc": "Accepted"}
    payment = Payment.objects.get(reference="UCN0NUL001")
    assert payment.amount == 750 and payment.payer_name == "JA\ufffdNE DOE"
    stored = Callback.objects.get(payment=payment)
    assert stored.body == body.decode() and stored.state == Callback.State.PROCESSED


def test_a_nul_in_an_account_number_or_request_id_is_answered_not_a_500(alpha, paths):
    validation = json.dumps(confirmation("UCN0NUL002", BillRefNumber="A\x00B")).encode()
    response = post(alpha, paths["validation"], validation)
    assert response.status_code == 200 and response.json()["ResultCode"] == "C2B00012"

    stk = {"Body": {"stkCallback": {"CheckoutRequestID": "ws_CO_\x00", "ResultCode": 1032}}}
    response = post(alpha, paths["stk"], json.dumps(stk).encode())
    assert response.status_code == 200
    assert Callback.objects.filter(kind=Callback.Kind.STK, state="failed").exists()


def test_a_raw_nul_byte_is_a_400_and_the_body_is_kept_escaped(alpha, paths):
    body = b'{"TransID": "UCN0NUL003", "TransAmount": "100", "FirstName": "\x00"}'
    response = post(alpha, paths["confirmation"], body)

    assert response.status_code == 400
    assert "Rejected" in response.json()["ResultDesc"]
    stored = Callback.objects.get()
    assert stored.state == Callback.State.FAILED
    assert stored.body == '{"TransID": "UCN0NUL003", "TransAmount": "100", "FirstName": "\\x00"}'


def test_deeply_nested_json_is_a_400_with_a_reason(alpha, paths):
    for body in (b"[" * 5000 + b"]" * 5000, b'{"a":' * 2000 + b"1" + b"}" * 2000):
        response = post(alpha, paths["confirmation"], body)
        assert response.status_code == 400
        assert "nested deeper" in response.json()["ResultDesc"]
    assert not Payment.objects.exists()
    assert Callback.objects.filter(state=Callback.State.FAILED).count() == 2


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"TransID": "UCN0BIN001", "FirstName": "\xff\xfe"}', "not UTF-8"),
        (b'{"TransID": "UCN0BIG001", "TransAmount": 1e999}', "too large"),
        (b'{"TransID": "UCN0BIG002", "TransAmount": ' + b"9" * 5000 + b"}", "digits"),
        (b'{"TransID": "UCN0NAN001", "TransAmount": NaN}', "NaN"),
        (b'["not", "an", "object"]', "not a JSON object"),
    ],
)
def test_an_unusable_body_is_a_400_with_a_reason_and_stored(alpha, paths, body, reason):
    response = post(alpha, paths["confirmation"], body)
    assert response.status_code == 400
    assert reason in response.json()["ResultDesc"]
    assert Callback.objects.get().state == Callback.State.FAILED


def test_a_callback_that_fails_to_be_taken_is_stored_raw_and_not_accepted(
    alpha, paths, monkeypatch
):
    def broken(data):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(services, "take_confirmation", broken)
    body = json.dumps(confirmation("UCN0RAW001")).encode()
    response = post(alpha, paths["confirmation"], body)

    assert response.status_code == 200
    assert response.json()["ResultDesc"] != "Accepted"
    stored = Callback.objects.get()
    assert stored.state == Callback.State.RECEIVED and "went away" in stored.error
    assert stored.body == body.decode()


def test_money_not_taken_is_listed_on_the_unmatched_page(alpha, paths):
    post(alpha, paths["confirmation"], json.dumps(confirmation("bad id", TransAmount="1")).encode())
    stored = Callback.objects.get()

    page = alpha.client(alpha.finance).get(reverse("payments:unmatched"))
    assert page.status_code == 200
    assert f'id="callback-{stored.pk}"' in page.content.decode()


# --- finding 7 ------------------------------------------------------------------------


@contextmanager
def captured(logger_name: str):
    """Every line the logger's own handlers print, caught by a plain handler put first,
    as Django's default console handler on "django" is (it prints when DEBUG is on)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger(logger_name)
    logger.handlers.insert(0, handler)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)


def test_djangos_not_found_line_does_not_log_the_callback_token(alpha, paths):
    """An allowlist refusal is a 404 on the real token's path: Django logs "Not Found"
    with the path, and every handler (not only ours) must see it redacted."""
    cfg = MpesaSettings.load()
    cfg.allowed_ips = "10.99.99.99"
    cfg.save(update_fields=["allowed_ips"])
    with captured("django") as logged:
        response = post(alpha, paths["confirmation"], b"{}")

    assert response.status_code == 404
    assert "Not Found: /payments/c2b/confirmation/[token]/" in logged.getvalue()
    assert cfg.callback_token not in logged.getvalue()


def test_the_request_log_line_of_the_server_does_not_carry_the_token():
    token = "T0ken-of-an-isp_xyz"
    with captured("django.server") as logged:
        line = f"POST /payments/stk/callback/{token}/ HTTP/1.1"
        logging.getLogger("django.server").info('"%s" %s %s', line, 404, 9)
    assert "/payments/stk/callback/[token]/" in logged.getvalue()
    assert token not in logged.getvalue()


# --- findings 5 and 9 -----------------------------------------------------------------


def test_pay_status_with_a_nul_in_the_id_is_a_404_not_a_500(alpha, settings):
    settings.DEBUG = True
    client = alpha.client()
    client.raise_request_exception = False
    response = client.get("/pay/%00/")
    assert response.status_code == 404
    assert DB_PASSWORD not in response.content.decode(errors="replace")


def test_the_debug_error_page_hides_the_database_url_and_its_password(settings):
    settings.DEBUG = True
    settings.DATABASE_URL = DATABASE_URL
    settings.CACHE_LOCATION_FOR_TEST = f"redis://:{DB_PASSWORD}@redis:6379/0"
    request = RequestFactory().get("/pay/x/", DATABASE_URL=DATABASE_URL)
    try:
        raise ValueError("PostgreSQL text fields cannot contain NUL (0x00) bytes")
    except ValueError:
        html = ExceptionReporter(request, *sys.exc_info()).get_traceback_html()
    assert DB_PASSWORD not in html
    assert "DATABASE_URL" in html  # named, with its value hidden
