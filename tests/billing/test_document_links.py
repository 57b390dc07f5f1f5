"""Signed document links (`/d/<signed>/`, billing.links): an invoice, a receipt or a
statement opens without signing in while its link is genuine and fresh; an altered,
expired or other ISP's link is refused with a page that says so, and no token at all
gives a 500 (issue 13, acceptance)."""

import datetime
import re

import pytest
import time_machine
from django.db import connection
from django.test import Client
from django.utils import timezone
from django_tenants.utils import tenant_context
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing import links, services
from billing.models import LedgerEntry
from ispops.messaging.models import Message
from tests.billing import test_pages
from tests.billing.test_pdf import pdf_text

billed = test_pages.billed


def _open(tenant, path: str):
    """GET `path` on the tenant's host as nobody (no session), from the public schema."""
    connection.set_schema_to_public()
    return Client(HTTP_HOST=tenant.host).get(path)


def _token(kind, pk, *, at=None, schema="alpha") -> str:
    return links.make_token(kind, pk, at=at or timezone.now(), schema=schema)


def _text(response) -> str:
    return " ".join(pdf_text(response.content).split())


def _assert_private_pdf(response):
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF-")
    assert response["Content-Disposition"].startswith("inline; filename=")
    assert response["Cache-Control"] == "private, no-store"
    assert "noindex" in response["X-Robots-Tag"]


# --- the documents open without a login ----------------------------------------------


def test_an_invoice_link_opens_that_invoice_without_a_login(alpha, billed):
    response = _open(alpha, f"/d/{_token(links.INVOICE, billed.invoice.pk)}/")
    _assert_private_pdf(response)
    assert f'filename="{billed.invoice.number}.pdf"' in response["Content-Disposition"]
    text = _text(response)
    assert billed.invoice.number in text and billed.customer.account in text


def test_a_receipt_link_opens_the_payments_receipt(alpha, billed):
    with tenant_context(alpha.isp):
        entry = services.record_payment(
            billed.customer, "3000", actor="test", reference="QK12ABC345"
        )
    response = _open(alpha, f"/d/{_token(links.RECEIPT, entry.pk)}/")
    _assert_private_pdf(response)
    assert "receipt-QK12ABC345.pdf" in response["Content-Disposition"]
    text = _text(response)
    assert "QK12ABC345" in text and billed.customer.account in text


def test_a_receipt_link_to_an_entry_that_is_not_a_payment_opens_nothing(alpha, billed):
    with tenant_context(alpha.isp):
        charge = LedgerEntry.objects.get(invoice=billed.invoice, kind=LedgerEntry.Kind.CHARGE)
    response = _open(alpha, f"/d/{_token(links.RECEIPT, charge.pk)}/")
    assert response.status_code == 404
    assert b"This link is not valid" in response.content


def test_a_statement_link_opens_the_customers_statement(alpha, billed):
    with tenant_context(alpha.isp):
        services.record_payment(billed.customer, "500", actor="test", reference="QK99XYZ001")
    response = _open(alpha, f"/d/{_token(links.STATEMENT, billed.customer.pk)}/")
    _assert_private_pdf(response)
    assert f"statement-{billed.customer.account}" in response["Content-Disposition"]
    text = _text(response)
    assert billed.customer.account in text and "QK99XYZ001" in text
    assert billed.invoice.number in text
    assert "KES 1,820.00" in text  # 2,320.00 charged less 500.00 paid


def test_a_long_statement_shows_the_latest_rows_after_a_balance_brought_forward(
    in_alpha, billed, monkeypatch
):
    from billing import pdf

    monkeypatch.setattr(pdf, "STATEMENT_ROWS", 2)
    for n in range(3):
        services.record_payment(billed.customer, "100", actor="test", reference=f"REF{n}")
    html = " ".join(pdf.statement_html(billed.customer, at=timezone.now()).split())
    assert "Balance brought forward" in html and "KES 2,220.00" in html
    assert "REF0" not in html and "REF1" in html and "REF2" in html
    assert "Owed" in html and "KES 2,020.00" in html


def test_a_link_works_again_and_again_until_it_expires(alpha, billed):
    path = f"/d/{_token(links.INVOICE, billed.invoice.pk)}/"
    assert _open(alpha, path).status_code == 200
    assert _open(alpha, path).status_code == 200


def test_a_link_only_answers_get(alpha, billed):
    path = f"/d/{_token(links.INVOICE, billed.invoice.pk)}/"
    connection.set_schema_to_public()
    assert Client(HTTP_HOST=alpha.host).post(path).status_code == 405


# --- refused: altered, expired, another ISP's ---------------------------------------


def _flip(token: str, at: int) -> str:
    ch = token[at]
    return token[:at] + ("b" if ch == "a" else "a") + token[at + 1 :]


def _alterations(token: str, other_pk: int) -> list[str]:
    body, mac = token.rsplit(".", 1)
    kind_id, expires = body.split(".")
    later = links._b36(int(expires, 36) + 86400 * 365)
    return [
        _flip(token, len(token) - 1),  # the MAC's last character
        _flip(token, len(token) - 10),  # inside the MAC
        f"{kind_id[0]}{links._b36(other_pk)}.{expires}.{mac}",  # another id
        f"s{kind_id[1:]}.{expires}.{mac}",  # another kind: the customer's statement
        f"r{kind_id[1:]}.{expires}.{mac}",  # another kind: a receipt
        f"{kind_id}.{later}.{mac}",  # a later expiry
        f"{body}.{mac[:-1]}",  # cut short
        f"{body}.{mac}x",  # made longer
        f"{kind_id.upper()}.{expires}.{mac}",
    ]


def test_an_altered_link_is_refused(alpha, billed):
    with tenant_context(alpha.isp):
        other = test_pages.make_postpaid_customer(billed.plan)[0]
    token = _token(links.INVOICE, billed.invoice.pk)
    for altered in _alterations(token, billed.invoice.pk + 1):
        assert altered != token
        response = _open(alpha, f"/d/{altered}/")
        assert response.status_code == 404, altered
        assert b"This link is not valid" in response.content
        assert response["Cache-Control"] == "private, no-store"
    # Nothing about the customer's other documents is reachable with it either.
    stolen_mac = token.rsplit(".", 1)[1]
    body = f"s{links._b36(other.pk)}.{token.split('.')[1]}"
    assert _open(alpha, f"/d/{body}.{stolen_mac}/").status_code == 404


def test_an_expired_link_is_refused_with_a_page_that_says_so(alpha, billed):
    made = timezone.now()
    path = f"/d/{_token(links.INVOICE, billed.invoice.pk, at=made)}/"
    with time_machine.travel(made + links.LIFETIMES[links.INVOICE] - datetime.timedelta(minutes=1)):
        assert _open(alpha, path).status_code == 200
    with time_machine.travel(made + links.LIFETIMES[links.INVOICE] + datetime.timedelta(seconds=1)):
        response = _open(alpha, path)
    assert response.status_code == 410
    assert b"This link has expired" in response.content
    assert b"Alpha Net" in response.content
    assert response["Cache-Control"] == "private, no-store"


def test_each_kind_has_its_own_lifetime():
    at = timezone.now()
    for kind, lifetime in links.LIFETIMES.items():
        ref = links.check_token(_token(kind, 7, at=at), at=at, schema="alpha")
        assert (ref.kind, ref.pk) == (kind, 7)
        assert abs(ref.expires_at - (at + lifetime)) < datetime.timedelta(seconds=1)


def test_a_link_of_one_isp_does_not_open_on_another_isps_host(alpha, beta, billed):
    token = _token(links.INVOICE, billed.invoice.pk, schema="alpha")
    response = _open(beta, f"/d/{token}/")
    assert response.status_code == 404
    assert b"This link is not valid" in response.content
    # And the reverse: beta's link to the same id does not open alpha's invoice.
    forged = _token(links.INVOICE, billed.invoice.pk, schema="beta")
    assert _open(alpha, f"/d/{forged}/").status_code == 404


def test_a_link_is_not_made_or_opened_on_the_platform():
    with pytest.raises(links.LinkError):
        links.make_token(links.INVOICE, 1, at=timezone.now(), schema="public")


def test_an_old_secret_key_still_opens_its_links(settings):
    at = timezone.now()
    old = _token(links.INVOICE, 5, at=at)
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-new-secret-key-for-the-rotation-test-0123456789"
    assert links.check_token(old, at=at, schema="alpha").pk == 5
    settings.SECRET_KEY_FALLBACKS = []
    with pytest.raises(links.LinkError):
        links.check_token(old, at=at, schema="alpha")


def test_a_link_to_a_document_that_is_gone_is_refused(alpha):
    response = _open(alpha, f"/d/{_token(links.INVOICE, 987_654_321)}/")
    assert response.status_code == 404
    assert b"This link is not valid" in response.content


# --- the SMS that announces an invoice ----------------------------------------------------


def test_the_invoice_sms_carries_a_link_that_opens_the_invoice(alpha, billed, settings):
    settings.PUBLIC_SCHEME, settings.PUBLIC_PORT = "https", ""
    response = alpha.client(alpha.finance).post(f"/invoices/{billed.invoice.pk}/sms/")
    assert response.status_code == 302
    with tenant_context(alpha.isp):
        # The newest: the billing run announced the invoice too (the link then was
        # made with the run's settings).
        message = Message.objects.filter(related=f"invoice:{billed.invoice.pk}").latest("id")
    found = re.search(r"https://alpha\.localhost(/d/[^/\s]+/)", message.body)
    assert found, message.body
    assert billed.invoice.number in message.body
    assert len(message.body) <= 240, message.body  # two SMS parts at most
    pdf_response = _open(alpha, found.group(1))
    _assert_private_pdf(pdf_response)
    assert billed.invoice.number in _text(pdf_response)


def test_the_link_in_an_sms_keeps_the_development_port(in_alpha, billed, settings):
    from billing.announce import invoice_context
    from billing.models import BillingSettings

    settings.PUBLIC_SCHEME, settings.PUBLIC_PORT = "http", "8000"
    link = invoice_context(billed.invoice, BillingSettings.load())["link"]
    assert link.startswith("http://alpha.localhost:8000/d/i")


# --- never a 500 -----------------------------------------------------------------------

GARBAGE = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
TOKENISH = st.from_regex(
    r"[irsx][0-9a-z]{0,14}\.[0-9a-z]{0,9}\.[A-Za-z0-9_-]{14,18}", fullmatch=True
)


@GARBAGE
@given(st.one_of(st.text(min_size=1, max_size=80), TOKENISH))
def test_no_token_gives_a_500(alpha, garbage):
    from urllib.parse import quote

    path = "/d/" + quote(garbage.replace("/", ""), safe="") + "/"
    if path == "/d//":
        return
    response = _open(alpha, path)
    assert response.status_code in (404, 410), (garbage, response.status_code)


@GARBAGE
@given(st.text(max_size=80))
def test_check_token_only_ever_raises_link_error(garbage):
    with pytest.raises(links.LinkError):
        links.check_token(garbage, at=timezone.now(), schema="alpha")
