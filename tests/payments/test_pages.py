"""Payments staff pages: the list (filters, search by receipt, totals, CSV), the unmatched
queue's one-step assign, a payment's page (raw callbacks, reversal), a payment entered by
hand, the customer page's payments card; who may do what, and branch limits."""

import csv
import io
import itertools
import json
from datetime import timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.utils import timezone
from django_tenants.utils import tenant_context

from billing import services as billing
from billing.models import LedgerEntry
from ispops.staff.models import Branch
from payments import services
from payments.models import Callback, Payment
from subscribers import services as subscribers

D = Decimal
_n = itertools.count(1)


def make_customer(name="Achieng Otieno", **fields):
    n = next(_n)
    return subscribers.create_customer(
        actor="test", name=name, phone=f"0722{n:06d}", email=f"pay{n}@example.com", **fields
    )


def mpesa(receipt, amount, **fields):
    """An M-Pesa payment as the C2B confirmation stores it."""
    fields.setdefault("via_c2b", True)
    return Payment.objects.create(
        method=Payment.Method.MPESA, reference=receipt, amount=D(amount), **fields
    )


def credited(customer, receipt, amount, **fields):
    """An M-Pesa payment matched and credited to `customer` through the service."""
    payment = mpesa(receipt, amount, account_reference=customer.account, **fields)
    assert services.credit_payment(payment.pk) == "credited"
    payment.refresh_from_db()
    return payment


def unmatched(receipt, amount, typed="WRONG1", **fields):
    payment = mpesa(receipt, amount, account_reference=typed, **fields)
    assert services.credit_payment(payment.pk) == "unmatched"
    payment.refresh_from_db()
    return payment


@pytest.fixture
def world(in_alpha):
    """Two customers of alpha, payments of every kind, and one unmatched payment."""
    now = timezone.now()
    achieng = make_customer()
    baraka = make_customer(name="Baraka Mwangi")
    paid = credited(achieng, "QKA1B2C3D4", "1500.00", payer_name="ACHIENG OTIENO")
    stk = credited(
        baraka,
        "QKS9T8U7V6",
        "2500.00",
        via_c2b=False,
        via_stk=True,
        payer_name="BARAKA MWANGI",
        received_at=now - timedelta(days=3),
    )
    cash = services.record_manual_payment(
        achieng, method="cash", amount="700", reference="SLIP-9", actor="test"
    )
    stray = unmatched(
        "QKU1U2U3U4",
        "999.00",
        typed="ACC 777",
        payer_name="JOHN KAMAU",
        received_at=now - timedelta(days=1),
    )
    return SimpleNamespace(
        achieng=achieng, baraka=baraka, paid=paid, stk=stk, cash=cash, stray=stray
    )


def refs(response):
    return {p.reference for p in response.context["page"]}


# --- the list -------------------------------------------------------------------------------


def test_list_filters_by_state_method_channel_date_and_customer(alpha, world):
    achieng, paid, stk, cash, stray = world.achieng, world.paid, world.stk, world.cash, world.stray
    client = alpha.client(alpha.finance)
    every = {paid.reference, stk.reference, cash.reference, stray.reference}
    assert refs(client.get("/payments/")) == every
    assert refs(client.get("/payments/", {"state": "unmatched"})) == {stray.reference}
    assert refs(client.get("/payments/", {"method": "cash"})) == {cash.reference}
    assert refs(client.get("/payments/", {"channel": "stk"})) == {stk.reference}
    assert refs(client.get("/payments/", {"channel": "c2b"})) == {paid.reference, stray.reference}
    assert refs(client.get("/payments/", {"customer": achieng.pk})) == {
        paid.reference,
        cash.reference,
    }
    today = timezone.localdate()
    three_ago = (today - timedelta(days=3)).isoformat()
    assert refs(client.get("/payments/", {"received_to": three_ago})) == {stk.reference}
    assert refs(
        client.get("/payments/", {"received_from": today.isoformat(), "method": "mpesa"})
    ) == {paid.reference}
    # A range that ends before it starts shows nothing and says why.
    bad = client.get("/payments/", {"received_from": today, "received_to": three_ago})
    assert refs(bad) == set() and "The end is before the start." in bad.content.decode()


def test_search_finds_a_payment_by_its_receipt_in_any_case_and_only_that_one(alpha, world):
    baraka, paid, stk, stray = world.baraka, world.paid, world.stk, world.stray
    client = alpha.client(alpha.finance)
    assert refs(client.get("/payments/", {"q": "qka1b2c3d4"})) == {paid.reference}
    assert refs(client.get("/payments/", {"q": " QKS9T8U7V6 "})) == {stk.reference}
    # An account number finds that customer's payments, not accounts containing it.
    assert refs(client.get("/payments/", {"q": baraka.account})) == {stk.reference}
    # What the payer typed, and the payer's name, in part and in any case.
    assert refs(client.get("/payments/", {"q": "acc 777"})) == {stray.reference}
    assert refs(client.get("/payments/", {"q": "kamau"})) == {stray.reference}
    assert refs(client.get("/payments/", {"q": "nobody-at-all"})) == set()


def test_list_totals_and_paginates_the_filtered_set(alpha, in_alpha, django_assert_max_num_queries):
    customer = make_customer()
    Payment.objects.bulk_create(
        Payment(
            method="cash",
            reference=f"BULK-{i}",
            amount=D("100.50"),
            customer=customer,
            state="credited",
        )
        for i in range(55)
    )
    mpesa("QKOTHER001", "5000")
    client = alpha.client(alpha.finance)
    client.get("/payments/")  # the first request after login renews the session
    with django_assert_max_num_queries(10):
        response = client.get("/payments/", {"method": "cash"})
    totals = response.context["totals"]
    assert totals["count"] == 55
    assert totals["total"] == totals["credited"] == D("100.50") * 55
    page = response.context["page"]
    assert len(page) == 50 and page.paginator.num_pages == 2
    assert "KES 5,527.50" in response.content.decode()
    second = client.get("/payments/", {"method": "cash", "page": 2})
    assert len(second.context["page"]) == 5


def test_list_answers_htmx_with_the_results_only(alpha, world):
    response = alpha.client(alpha.finance).get(
        "/payments/", {"q": "QKA1B2C3D4"}, HTTP_HX_REQUEST="true"
    )
    html = response.content.decode()
    assert "QKA1B2C3D4" in html and "<html" not in html and 'id="results"' in html


def test_csv_export_holds_the_filtered_payments(alpha, world):
    baraka, paid, stk, stray = world.baraka, world.paid, world.stk, world.stray
    with tenant_context(alpha.isp):
        Payment.objects.filter(pk=stray.pk).update(payer_name="=HYPERLINK(1)")
    response = alpha.client(alpha.finance).get("/payments/", {"method": "mpesa", "format": "csv"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    # Oldest first, M-Pesa only: the STK payment, the unmatched one, then today's.
    assert [r["reference"] for r in rows] == [stk.reference, stray.reference, paid.reference]
    first = rows[0]
    assert first["amount"] == "2500.00" and first["state"] == "credited"
    assert first["channels"] == "STK" and first["customer_account"] == baraka.account
    assert first["received_at"].endswith("+03:00")  # Nairobi time
    assert rows[1]["customer_account"] == "" and rows[1]["account_reference"] == "ACC 777"
    assert rows[1]["payer_name"] == "'=HYPERLINK(1)"  # never a spreadsheet formula


# --- who may see what -----------------------------------------------------------------------


def test_technician_is_refused_every_payments_page(alpha, world):
    paid = world.paid
    client = alpha.client(alpha.technician)
    for url in ("/payments/", "/payments/unmatched/", f"/payments/{paid.pk}/", "/payments/new/"):
        assert client.get(url).status_code == 403, url
    assert client.post(f"/payments/{paid.pk}/reverse/", {"reason": "x"}).status_code == 403
    with tenant_context(alpha.isp):
        assert Payment.objects.get(pk=paid.pk).state == "credited"


def test_support_reads_payments_but_may_not_change_or_export_them(alpha, world):
    paid, stray = world.paid, world.stray
    client = alpha.client(alpha.support)
    assert client.get("/payments/").status_code == 200
    page = client.get(f"/payments/{paid.pk}/")
    assert page.status_code == 200 and 'id="reverse"' not in page.content.decode()
    assert client.get("/payments/", {"format": "csv"}).status_code == 403
    assert client.get("/payments/unmatched/").status_code == 403
    assert client.post(f"/payments/{paid.pk}/reverse/", {"reason": "x"}).status_code == 403
    assert client.post(f"/payments/{stray.pk}/assign/", {"account": "x"}).status_code == 403


def test_staff_of_one_branch_see_only_their_branch_payments_and_no_unmatched(alpha, in_alpha):
    mine = Branch.objects.create(name="Thika", code="alpha-thika")
    other = Branch.objects.create(name="Nakuru", code="alpha-nakuru")
    ours = credited(make_customer(branch=mine), "QKMINE0001", "100")
    theirs = credited(make_customer(branch=other), "QKTHEIRS01", "200")
    stray = unmatched("QKSTRAY001", "300")
    alpha.finance.branches.set([mine])
    client = alpha.client(alpha.finance)
    response = client.get("/payments/")
    assert refs(response) == {ours.reference}
    assert response.context["totals"]["total"] == D("100.00")
    assert refs(client.get("/payments/", {"q": theirs.reference})) == set()
    assert client.get(f"/payments/{theirs.pk}/").status_code == 404
    assert client.get(f"/payments/{stray.pk}/").status_code == 404
    assert client.get("/payments/unmatched/").context["rows"] == []
    refused = client.post(f"/payments/{theirs.pk}/reverse/", {"reason": "not mine"})
    assert refused.status_code == 404
    with tenant_context(alpha.isp):
        assert Payment.objects.get(pk=theirs.pk).state == "credited"


def test_payments_of_one_isp_are_not_reachable_from_another(alpha, beta, world):
    paid = world.paid
    client = beta.client(beta.owner)
    assert client.get(f"/payments/{paid.pk}/").status_code == 404
    assert client.get("/payments/", {"q": paid.reference}).context["totals"]["count"] == 0


# --- the unmatched queue ---------------------------------------------------------------------


def test_unmatched_queue_lists_oldest_first(alpha, in_alpha):
    now = timezone.now()
    newer = unmatched("QKNEW00001", "10", received_at=now - timedelta(hours=1))
    older = unmatched("QKOLD00001", "20", received_at=now - timedelta(days=2))
    response = alpha.client(alpha.finance).get("/payments/unmatched/")
    assert [p.reference for p, _ in response.context["rows"]] == [
        older.reference,
        newer.reference,
    ]


def test_assigning_an_unmatched_payment_credits_that_customer(alpha, world):
    baraka, stray = world.baraka, world.stray
    before = _balance(alpha, baraka)
    client = alpha.client(alpha.finance)
    response = client.post(
        "/payments/unmatched/", {"payment": stray.pk, "account": baraka.account.lower()}
    )
    assert response.status_code == 302 and response["Location"] == "/payments/unmatched/"
    with tenant_context(alpha.isp):
        stray.refresh_from_db()
        assert stray.state == "credited" and stray.customer_id == baraka.pk
        assert stray.matched_by == "staff" and stray.ledger_entry.amount == D("-999.00")
    assert before - _balance(alpha, baraka) == D("999.00")
    page = client.get("/payments/unmatched/")
    assert page.context["rows"] == []
    assert "credited to Baraka Mwangi" in page.content.decode()


def test_assigning_to_an_unknown_account_is_400_and_changes_nothing(alpha, world):
    stray = world.stray
    response = alpha.client(alpha.finance).post(
        "/payments/unmatched/", {"payment": stray.pk, "account": "NO-SUCH-ACC"}
    )
    assert response.status_code == 400
    assert "No customer has the account number NO-SUCH-ACC" in response.content.decode()
    with tenant_context(alpha.isp):
        stray.refresh_from_db()
        assert stray.state == "unmatched" and stray.customer_id is None
        assert not LedgerEntry.objects.filter(reference=stray.reference).exists()


def test_assigning_a_payment_already_credited_is_refused(alpha, world):
    achieng, paid = world.achieng, world.paid
    before = _balance(alpha, achieng)
    response = alpha.client(alpha.owner).post(
        f"/payments/{paid.pk}/assign/", {"account": achieng.account}
    )
    assert response.status_code == 400
    assert "Payment QKA1B2C3D4 is credited, not unmatched." in response.content.decode()
    assert _balance(alpha, achieng) == before


def test_assign_from_the_payment_page(alpha, world):
    achieng, stray = world.achieng, world.stray
    client = alpha.client(alpha.admin)
    assert 'id="assign"' in client.get(f"/payments/{stray.pk}/").content.decode()
    response = client.post(f"/payments/{stray.pk}/assign/", {"account": achieng.account})
    assert response.status_code == 302 and response["Location"] == f"/payments/{stray.pk}/"
    with tenant_context(alpha.isp):
        assert Payment.objects.get(pk=stray.pk).customer_id == achieng.pk


# --- one payment ----------------------------------------------------------------------------


def test_payment_page_shows_the_raw_callbacks_pretty_printed(alpha, world):
    achieng, paid = world.achieng, world.paid
    body = {"TransactionType": "Pay Bill", "TransID": paid.reference, "TransAmount": "1500.00"}
    with tenant_context(alpha.isp):
        Callback.objects.create(
            kind="confirmation",
            body=json.dumps(body),
            source_ip="196.201.214.200",
            state="processed",
            payment=paid,
        )
    html = alpha.client(alpha.finance).get(f"/payments/{paid.pk}/").content.decode()
    assert "C2B confirmation" in html and "196.201.214.200" in html
    assert "<pre" in html and "  &quot;TransID&quot;: &quot;QKA1B2C3D4&quot;" in html
    assert achieng.name in html and "ACHIENG OTIENO" in html
    assert 'id="reverse"' in html and 'id="assign"' not in html


def test_reversal_needs_a_reason_and_changes_nothing_without_one(alpha, world):
    achieng, paid = world.achieng, world.paid
    before = _balance(alpha, achieng)
    response = alpha.client(alpha.finance).post(f"/payments/{paid.pk}/reverse/", {"reason": " "})
    assert response.status_code == 400
    with tenant_context(alpha.isp):
        assert Payment.objects.get(pk=paid.pk).state == "credited"
    assert _balance(alpha, achieng) == before
    assert alpha.client(alpha.finance).get(f"/payments/{paid.pk}/reverse/").status_code == 405


def test_reversal_marks_the_payment_reversed_and_the_customer_owes_it_again(alpha, world):
    achieng, paid = world.achieng, world.paid
    before = _balance(alpha, achieng)
    client = alpha.client(alpha.finance)
    response = client.post(f"/payments/{paid.pk}/reverse/", {"reason": "Bounced"})
    assert response.status_code == 302
    with tenant_context(alpha.isp):
        paid.refresh_from_db()
        assert paid.state == "reversed" and paid.reversal_reason == "Bounced"
        assert paid.reversed_by == alpha.finance.email
    assert _balance(alpha, achieng) - before == D("1500.00")
    html = client.get(f"/payments/{paid.pk}/").content.decode()
    assert 'id="reversal"' in html and "Bounced" in html and 'id="reverse"' not in html
    again = client.post(f"/payments/{paid.pk}/reverse/", {"reason": "Twice"})
    assert (
        again.status_code == 400
        and "Only a credited payment can be reversed" in again.content.decode()
    )
    assert _balance(alpha, achieng) - before == D("1500.00")


# --- a payment entered by hand --------------------------------------------------------------


def _manual(client, customer, **data):
    fields = {"method": "cash", "amount": "1000", "reference": "SLIP-100", "note": ""}
    return client.post(f"/payments/new/?customer={customer.pk}", {**fields, **data})


def test_manual_payment_is_credited_and_listed(alpha, world):
    baraka = world.baraka
    before = _balance(alpha, baraka)
    client = alpha.client(alpha.finance)
    page = client.get(f"/payments/new/?customer={baraka.pk}")
    assert page.status_code == 200 and baraka.account in page.content.decode()
    response = _manual(client, baraka, method="cheque", reference="CHQ-55", note="KCB")
    assert response.status_code == 302
    with tenant_context(alpha.isp):
        payment = Payment.objects.get(reference="CHQ-55")
        assert response["Location"] == f"/payments/{payment.pk}/"
        assert (payment.method, payment.state, payment.note) == ("cheque", "credited", "KCB")
        assert payment.recorded_by == alpha.finance.email
    assert before - _balance(alpha, baraka) == D("1000.00")
    assert refs(client.get("/payments/", {"q": "CHQ-55"})) == {"CHQ-55"}


def test_manual_payment_with_a_used_reference_is_refused(alpha, world):
    achieng, baraka = world.achieng, world.baraka
    client = alpha.client(alpha.finance)
    assert _manual(client, baraka, reference="SLIP-200").status_code == 302
    before = _balance(alpha, baraka)
    again = _manual(client, baraka, reference="slip-200", method="bank")
    assert again.status_code == 400
    assert "already on this customer" in again.content.decode()
    # An M-Pesa receipt is one payment at all, whoever it was put on.
    receipt = _manual(client, achieng, method="mpesa", reference="qks9t8u7v6")
    assert receipt.status_code == 400 and "QKS9T8U7V6 is already recorded" in (
        receipt.content.decode()
    )
    assert _balance(alpha, baraka) == before
    with tenant_context(alpha.isp):
        assert Payment.objects.filter(reference__iexact="SLIP-200").count() == 1
        assert Payment.objects.filter(reference="QKS9T8U7V6").count() == 1


def test_manual_payment_by_account_number_and_bad_input(alpha, world):
    achieng = world.achieng
    client = alpha.client(alpha.owner)
    fields = {"method": "bank", "amount": "250", "reference": "EFT-1", "note": ""}
    unknown = client.post("/payments/new/", {**fields, "account": "ZZZ999"})
    assert unknown.status_code == 400
    zero = client.post("/payments/new/", {**fields, "account": achieng.account, "amount": "0"})
    assert zero.status_code == 400
    with tenant_context(alpha.isp):
        assert not Payment.objects.filter(reference="EFT-1").exists()
    ok = client.post("/payments/new/", {**fields, "account": achieng.account})
    assert ok.status_code == 302
    with tenant_context(alpha.isp):
        assert Payment.objects.get(reference="EFT-1").customer_id == achieng.pk
    assert client.get("/payments/new/?customer=999999").status_code == 404


def test_statement_payment_shows_in_the_payments_list(alpha, world):
    baraka = world.baraka
    client = alpha.client(alpha.finance)
    response = client.post(
        f"/customers/{baraka.pk}/statement/",
        {
            "payment-action": "payment",
            "payment-amount": "300",
            "payment-method": "mpesa-manual",
            "payment-reference": "qkhand0001",
        },
    )
    assert response.status_code == 302
    with tenant_context(alpha.isp):
        payment = Payment.objects.get(reference="QKHAND0001")
        assert (payment.method, payment.state, payment.customer_id) == (
            "mpesa",
            "credited",
            baraka.pk,
        )
    assert refs(client.get("/payments/", {"q": "qkhand0001"})) == {"QKHAND0001"}


# --- the customer page ----------------------------------------------------------------------


def test_customer_page_shows_the_payments_card(alpha, world):
    achieng, paid, cash = world.achieng, world.paid, world.cash
    html = alpha.client(alpha.finance).get(f"/subscribers/{achieng.pk}/").content.decode()
    assert 'id="payments"' in html
    assert f"/payments/{paid.pk}/" in html and f"/payments/{cash.pk}/" in html
    assert f"/payments/?customer={achieng.pk}" in html
    assert f"/payments/new/?customer={achieng.pk}" in html
    support = alpha.client(alpha.support).get(f"/subscribers/{achieng.pk}/").content.decode()
    assert 'id="payments"' in support and "/payments/new/" not in support
    technician = alpha.client(alpha.technician).get(f"/subscribers/{achieng.pk}/")
    assert technician.status_code == 200 and 'id="payments"' not in technician.content.decode()


def _balance(alpha, customer):
    with tenant_context(alpha.isp):
        return billing.customer_balance(customer)


def test_the_list_charts_money_received_per_day(in_alpha):
    customer = make_customer(name="Chart Payer")
    now = timezone.now()
    credited(customer, "QCH1000001", "1000.00", received_at=now)
    credited(customer, "QCH1000002", "500.00", received_at=now)
    credited(customer, "QCH1000003", "300.00", received_at=now - timedelta(days=2))
    old = credited(customer, "QCH1000004", "900.00", received_at=now - timedelta(days=40))
    services.reverse_payment(
        credited(customer, "QCH1000005", "50.00", received_at=now), actor="t", reason="Bounced"
    )
    page = in_alpha.client(in_alpha.finance).get("/payments/")
    bars = {bar["day"]: bar["amount"] for bar in page.context["chart"]["bars"]}
    today = timezone.localdate()
    assert len(bars) == 30 and old.received_at.date() not in bars
    assert bars[today] == D("1500.00")  # the reversed 50 is not counted
    assert bars[today - timedelta(days=2)] == D("300.00")
    assert bars[today - timedelta(days=1)] == D("0")
    tallest = max(page.context["chart"]["bars"], key=lambda bar: bar["height"])
    assert tallest["day"] == today and tallest["height"] == 120
    assert b"Received, last 30 days" in page.content
