"""The portal's bills pages (/my/invoices/, payments, statement): only this customer's
documents, each link opening that document's PDF, status in plain words, the statement
over the chosen period, and a query count that does not grow with the number of
invoices (the bench measures this page with 100,000 subscribers)."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tenants.utils import tenant_context

from billing import links
from billing import services as billing
from billing.models import Invoice, LedgerEntry
from payments import services as payments
from tests.billing.test_pdf import pdf_text
from tests.portal.conftest import sign_in

PHONE = "254712345601"
LINK = re.compile(r'href="/d/([^"/]+)/"')


@pytest.fixture
def subscriber(alpha, make_customer):
    customer = make_customer("0712345601", name="Akinyi Otieno")
    client = alpha.client()
    sign_in(alpha, client, PHONE)
    return customer, client


def charge(customer, amount="1000", *, days_ago=0, reason="Router call-out"):
    return billing.charge_once(
        customer, amount, actor="test", reason=reason, at=timezone.now() - timedelta(days=days_ago)
    )


def paid(customer, amount, reference):
    return payments.record_manual_payment(
        customer, method="mpesa", amount=amount, reference=reference, actor="test"
    )


def linked(tenant, page: str) -> list[links.DocumentRef]:
    """The documents the page's signed links name."""
    with tenant_context(tenant.isp):
        return [links.check_token(t, at=timezone.now()) for t in LINK.findall(page)]


def test_lists_only_this_customers_documents_with_their_links(alpha, subscriber, make_customer):
    customer, client = subscriber
    other = make_customer("0722000002", name="Zawadi Neighbour")
    mine = charge(customer, "1500")
    theirs = charge(other, "1700")
    paid(customer, "500", "UC3AB12A01")
    paid(other, "600", "UC3AB12A02")
    note = billing.issue_credit_note(customer, "200", actor="test", reason="Outage", invoice=mine)

    page = client.get("/my/invoices/").content.decode()
    assert mine.number in page and note.number in page and "UC3AB12A01" in page
    assert theirs.number not in page and "UC3AB12A02" not in page and "Zawadi" not in page

    refs = linked(alpha, page)
    with tenant_context(alpha.isp):
        receipt = LedgerEntry.objects.get(reference="UC3AB12A01", kind="payment")
        theirs_receipt = LedgerEntry.objects.get(reference="UC3AB12A02", kind="payment")
    named = {(r.kind, r.pk) for r in refs}
    assert named == {
        (links.INVOICE, mine.pk),
        (links.INVOICE, note.pk),
        (links.RECEIPT, receipt.pk),
    }
    assert (links.INVOICE, theirs.pk) not in named
    assert (links.RECEIPT, theirs_receipt.pk) not in named

    payments_page = client.get("/my/invoices/payments/").content.decode()
    assert "UC3AB12A01" in payments_page and "UC3AB12A02" not in payments_page
    statement = client.get("/my/invoices/statement/?months=12").content.decode()
    assert mine.number in statement or "Router call-out" in statement
    assert "UC3AB12A02" not in statement and "1,700.00" not in statement
    assert {(r.kind, r.pk) for r in linked(alpha, statement)} == {(links.STATEMENT, customer.pk)}


def test_each_link_opens_the_right_pdf_without_a_login(alpha, subscriber):
    customer, client = subscriber
    invoice = charge(customer, "1500")
    paid(customer, "1500", "UC3AB12A03")
    page = client.get("/my/invoices/").content.decode()
    statement = client.get("/my/invoices/statement/").content.decode()
    connection.set_schema_to_public()
    nobody = Client(HTTP_HOST=alpha.host)
    texts = {}
    for token in LINK.findall(page) + LINK.findall(statement):
        response = nobody.get(f"/d/{token}/")
        assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
        texts[token[0]] = " ".join(pdf_text(response.content).split())
    assert invoice.number in texts["i"] and customer.account in texts["i"]
    assert "UC3AB12A03" in texts["r"]
    assert customer.account in texts["s"]


def test_status_and_what_is_left_are_in_plain_words(alpha, subscriber):
    customer, client = subscriber
    overdue = charge(customer, "1000", days_ago=60, reason="Old fee")
    paid_one = charge(customer, "300", days_ago=40, reason="Paid fee")
    with tenant_context(alpha.isp):
        # Payments settle the oldest due first: the overdue one, then part of the next.
        paid(customer, "1300", "UC3AB12A04")
        part = charge(customer, "800", reason="Part fee")
        paid(customer, "300", "UC3AB12A05")
        void = charge(customer, "50", reason="Mistake")
        billing.void_invoice(void, actor="test", reason="typo")
        due = charge(customer, "400", reason="New fee")
    page = client.get("/my/invoices/").content.decode()

    def row(invoice: Invoice) -> str:
        start = page.index(f">{invoice.number}<")
        return page[start : page.index("</li>", start)]

    assert "Paid" in row(overdue) and "Paid" in row(paid_one)
    assert "Part paid" in row(part) and "Left to pay KES 500.00" in row(part)
    assert "Cancelled" in row(void) and "Left to pay" not in row(void)
    assert "To pay by" in row(due) and "Left to pay KES 400.00" in row(due)
    overdue_now = charge(customer, "900", days_ago=45, reason="Late fee")
    page = client.get("/my/invoices/").content.decode()
    assert "Overdue since" in row(overdue_now)


def test_the_statement_covers_the_chosen_period_from_the_balance_brought_forward(alpha, subscriber):
    customer, client = subscriber
    charge(customer, "1000", days_ago=200, reason="Installation fee")
    charge(customer, "250", days_ago=20, reason="Call-out fee")
    three = client.get("/my/invoices/statement/?months=3").content.decode()
    assert "Call-out fee" in three and "Installation fee" not in three
    assert "KES 1,000.00 to pay" in three  # brought forward
    assert "KES 1,250.00 to pay" in three  # now
    twelve = client.get("/my/invoices/statement/?months=12").content.decode()
    assert "Call-out fee" in twelve and "Installation fee" in twelve
    assert client.get("/my/invoices/statement/?months=99").status_code == 200
    assert client.get("/my/invoices/statement/?months=x").status_code == 200


def test_pages_of_invoices_go_back_in_time(alpha, subscriber):
    customer, client = subscriber
    made = [charge(customer, "10", days_ago=100 - n, reason=f"Fee {n}") for n in range(25)]
    first = client.get("/my/invoices/").content.decode()
    second = client.get("/my/invoices/?page=2").content.decode()
    assert made[-1].number in first and made[0].number not in first
    assert made[0].number in second and made[-1].number not in second
    assert "Older" in first and "Newer" in second
    assert client.get("/my/invoices/?page=abc").status_code == 200
    assert client.get("/my/invoices/?page=999999999").status_code == 200


# The search path, the session, the visit's customer, the list (the statement: its
# entries and the balance before them), the ISP's branding: the same with 1 or 30.
PINNED = {"/my/invoices/": 6, "/my/invoices/payments/": 5, "/my/invoices/statement/?months=12": 6}


@pytest.mark.parametrize("path", list(PINNED))
def test_the_query_count_does_not_grow_with_the_documents(alpha, subscriber, path):
    customer, client = subscriber
    charge(customer, "100")
    paid(customer, "100", "UC3AB12B00")
    client.get(path)  # settle anything done once per session
    with CaptureQueriesContext(connection) as one:
        assert client.get(path).status_code == 200
    for n in range(1, 30):
        invoice = charge(customer, "100", days_ago=n)
        if n % 3 == 0:
            billing.issue_credit_note(
                customer, "10", actor="test", reason="Credit", invoice=invoice
            )
        paid(customer, "50", f"UC3AB12B{n:02d}")
    client.get(path)  # the tenant cache may have lapsed while the documents were made
    with CaptureQueriesContext(connection) as thirty:
        assert client.get(path).status_code == 200
    assert len(thirty) == len(one) == PINNED[path], [q["sql"] for q in thirty.captured_queries]


def test_a_reversed_payment_is_marked(alpha, subscriber):
    customer, client = subscriber
    payment = paid(customer, "700", "UC3AB12A06")
    payments.reverse_payment(payment, actor="test", reason="bounced")
    page = client.get("/my/invoices/payments/").content.decode()
    assert "UC3AB12A06" in page and "Reversed" in page
    assert Decimal("700") == payment.amount


def test_staff_viewing_as_the_customer_may_read_the_bills(alpha, make_customer):
    customer = make_customer("0712345601")
    invoice = charge(customer, "1500")
    staff = alpha.client(alpha.owner)
    staff.post(f"/my/as/{customer.pk}/")
    for path in ("/my/invoices/", "/my/invoices/payments/", "/my/invoices/statement/"):
        assert staff.get(path).status_code == 200
    assert invoice.number in staff.get("/my/invoices/").content.decode()


def test_signed_out_visitors_are_sent_to_sign_in(alpha):
    for path in ("/my/invoices/", "/my/invoices/payments/", "/my/invoices/statement/"):
        response = alpha.client().get(path)
        assert response.status_code == 302 and response["Location"] == "/my/"
