""" "I already paid" (/my/claim/): every outcome, a code claimed once, the daily limits,
bad codes refused as a form error, staff viewing read-only refused, and money that
lands once on the ledger and restores the account exactly as a staff assignment does.

Unmatched payments arrive the real way: a C2B confirmation taken by
payments.services.receive (MSISDN masked as C2B v2 sends it, or hashed as v1), then
the crediting step that finds no customer for the account number typed."""

import hashlib
import json
from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db import IntegrityError
from django.utils import timezone
from django_tenants.utils import tenant_context

from billing import services as billing
from billing.models import LedgerEntry
from payments import services as payments
from payments.models import Payment
from portal import claims
from portal.models import PaymentClaim, PortalSettings
from subscribers import services as subscribers
from subscribers.models import ServiceAccount
from tests.portal.conftest import sign_in
from tickets.models import Ticket

PHONE = "254712345601"
OTHER_PHONE = "254722000002"


def arrived_unmatched(code: str, amount: str, msisdn: str, account_typed: str = "WRONG-1"):
    """A C2B payment whose account number matches nobody: stored and left unmatched by
    the same steps a real confirmation goes through."""
    body = {
        "TransactionType": "Pay Bill",
        "TransID": code,
        "TransTime": "20261203101500",
        "TransAmount": amount,
        "BusinessShortCode": "174379",
        "BillRefNumber": account_typed,
        "InvoiceNumber": "",
        "OrgAccountBalance": "",
        "ThirdPartyTransID": "",
        "MSISDN": msisdn,
        "FirstName": "JOHN",
        "MiddleName": "",
        "LastName": "",
    }
    outcome = payments.receive("confirmation", json.dumps(body).encode(), {}, "196.201.214.200")
    assert payments.credit_payment(outcome.payment_id) == "unmatched"
    return Payment.objects.get(pk=outcome.payment_id)


def masked(phone: str) -> str:
    return f"{phone[:4]} ***** {phone[-3:]}"


@pytest.fixture
def subscriber(alpha, make_customer):
    """A signed-in subscriber (phone PHONE) and their browser."""
    customer = make_customer("0712345601", name="Akinyi Otieno")
    client = alpha.client()
    sign_in(alpha, client, PHONE)
    return customer, client


def post_claim(alpha, client, **data):
    response = client.post("/my/claim/", data, REMOTE_ADDR=data.pop("ip", "10.0.0.1"))
    if response.status_code == 302:
        assert response["Location"] == "/my/claim/"
        return response, client.get("/my/claim/").content.decode()
    return response, response.content.decode()


def test_the_page_shows_the_form_with_the_signed_in_phone_as_default(alpha, subscriber):
    _, client = subscriber
    page = client.get("/my/claim/").content.decode()
    assert "I already paid" in page and 'name="code"' in page
    assert 'placeholder="0712345601"' in page


def test_an_unmatched_payment_is_assigned_credited_once_and_restores_the_account(alpha, subscriber):
    customer, client = subscriber
    with tenant_context(alpha.isp):
        account = ServiceAccount.objects.get(customer=customer)
        subscribers.change_status(account, "suspended", actor="test", reason="Expired")
        payment = arrived_unmatched("UC3AB12XYZ", "2500.00", masked(PHONE))
        before = billing.customer_balance(customer)

    response, page = post_claim(alpha, client, code=" uc3ab12xyz ", amount="2500")
    assert response.status_code == 302
    assert "is now on your account" in page and "UC3AB12XYZ" in page

    with tenant_context(alpha.isp):
        payment.refresh_from_db()
        assert payment.state == "credited" and payment.customer_id == customer.pk
        assert payment.matched_by == "claim"
        entries = LedgerEntry.objects.filter(customer=customer, kind="payment")
        assert [e.amount for e in entries] == [Decimal("-2500.00")]
        assert payment.ledger_entry_id == entries.get().pk
        # The prepaid subscriber's money bought the next term at once, as it does when
        # finance assigns a payment: the charge is the plan price, the balance unmoved.
        charges = LedgerEntry.objects.filter(customer=customer, kind="charge")
        assert [e.amount for e in charges] == [Decimal("2500.00")]
        assert billing.customer_balance(customer) == before
        account.refresh_from_db()
        assert account.status == "active" and account.expires_at > timezone.now()
        claim = PaymentClaim.objects.get(code="UC3AB12XYZ")
        assert claim.outcome == "assigned" and claim.payment_id == payment.pk
        assert claim.phone == PHONE and claim.amount == Decimal("2500.00")

    # Claimed once: a second try is refused, saying what came of the first, and no
    # money moves again.
    response, page = post_claim(alpha, client, code="UC3AB12XYZ", amount="2500")
    assert "You sent UC3AB12XYZ before" in page and "added to your account" in page
    with tenant_context(alpha.isp):
        assert LedgerEntry.objects.filter(customer=customer, kind="payment").count() == 1
        assert PaymentClaim.objects.filter(code="UC3AB12XYZ").count() == 2
        assert PaymentClaim.objects.filter(code="UC3AB12XYZ", outcome="refused").count() == 1


def test_a_hashed_msisdn_and_no_amount_typed_is_assigned_on_the_phone_typed(alpha, subscriber):
    customer, client = subscriber
    paid_from = "254733111222"  # not the signed-in phone: the subscriber types it
    with tenant_context(alpha.isp):
        digest = hashlib.sha256(paid_from.encode()).hexdigest()
        payment = arrived_unmatched("UC3AB12XY1", "700.00", digest)

    response, page = post_claim(alpha, client, code="UC3AB12XY1", phone="0733 111 222")
    assert response.status_code == 302 and "is now on your account" in page
    with tenant_context(alpha.isp):
        payment.refresh_from_db()
        assert payment.state == "credited" and payment.customer_id == customer.pk


def test_left_empty_the_phone_may_be_any_of_the_accounts_numbers(alpha, make_customer):
    """Signed in with the main phone, paid from the alternative one, typed no phone; the
    amount written as people write it."""
    customer = make_customer("0712345601", alt_phone="0733000111")
    client = alpha.client()
    sign_in(alpha, client, PHONE)
    with tenant_context(alpha.isp):
        payment = arrived_unmatched("UC3AB12XZ1", "2500.00", masked("254733000111"))
    response, page = post_claim(alpha, client, code="UC3AB12XZ1", amount="KES 2,500")
    assert response.status_code == 302 and "is now on your account" in page
    with tenant_context(alpha.isp):
        payment.refresh_from_db()
        assert payment.customer_id == customer.pk
        claim = PaymentClaim.objects.get(code="UC3AB12XZ1")
        assert claim.phone == "254733000111" and claim.amount == Decimal("2500.00")


def test_a_payment_already_on_the_account_is_said_to_be_there(alpha, subscriber):
    customer, client = subscriber
    with tenant_context(alpha.isp):
        payments.record_manual_payment(
            customer, method="mpesa", amount="1000", reference="UC3AB12XY2", actor="test"
        )
    response, page = post_claim(alpha, client, code="UC3AB12XY2")
    assert response.status_code == 302
    assert "is already on your account" in page
    with tenant_context(alpha.isp):
        assert PaymentClaim.objects.get(code="UC3AB12XY2").outcome == "matched"
        assert LedgerEntry.objects.filter(customer=customer, kind="payment").count() == 1


def test_an_unknown_code_opens_a_billing_ticket_for_finance(alpha, subscriber):
    customer, client = subscriber
    response, page = post_claim(alpha, client, code="UC3AB12XY3", amount="1500", phone="0712345601")
    assert response.status_code == 302
    with tenant_context(alpha.isp):
        ticket = Ticket.objects.get(customer=customer)
        claim = PaymentClaim.objects.get(code="UC3AB12XY3")
    assert claim.outcome == "ticket" and claim.ticket_id == ticket.pk
    assert ticket.category == "billing"
    assert "UC3AB12XY3" in ticket.subject
    for text in ("UC3AB12XY3", "KES 1,500.00", PHONE, customer.account, "no M-Pesa payment"):
        assert text in ticket.description
    assert f"opened ticket {ticket.number}" in page


@pytest.mark.parametrize(
    ("typed", "why"),
    [
        ({"amount": "900"}, "amount typed KES 900.00 differs"),
        ({"phone": "0799 000 111"}, "does not match the payer's number"),
    ],
)
def test_an_unmatched_payment_that_does_not_agree_becomes_a_ticket(alpha, subscriber, typed, why):
    customer, client = subscriber
    with tenant_context(alpha.isp):
        payment = arrived_unmatched("UC3AB12XY4", "2500.00", masked(PHONE))
    response, page = post_claim(alpha, client, code="UC3AB12XY4", **typed)
    assert response.status_code == 302 and "opened ticket" in page
    with tenant_context(alpha.isp):
        payment.refresh_from_db()
        assert payment.state == "unmatched" and payment.customer_id is None
        claim = PaymentClaim.objects.get(code="UC3AB12XY4")
        assert claim.outcome == "ticket" and why in claim.detail
        assert why in claim.ticket.description
        assert not LedgerEntry.objects.filter(customer=customer).exists()


def test_another_customers_payment_and_another_customers_claim_are_refused_alike(
    alpha, subscriber, make_customer
):
    customer, client = subscriber
    other = make_customer("0722000002", name="Zawadi Neighbour")
    with tenant_context(alpha.isp):
        payments.record_manual_payment(
            other, method="mpesa", amount="1000", reference="UC3AB12XY5", actor="test"
        )
    _, page_paid = post_claim(alpha, client, code="UC3AB12XY5", amount="1000")

    # The neighbour claims a code nobody stored (a ticket); then our subscriber tries it.
    neighbour = alpha.client()
    sign_in(alpha, neighbour, OTHER_PHONE)
    post_claim(alpha, neighbour, code="UC3AB12XY6")
    _, page_claimed = post_claim(alpha, client, code="UC3AB12XY6")

    said = claims_message(page_paid)
    assert said == claims_message(page_claimed)
    assert "cannot be claimed from this account" in said
    for page in (page_paid, page_claimed):
        assert "Zawadi" not in page and other.account not in page and "0722" not in page
    with tenant_context(alpha.isp):
        mine = PaymentClaim.objects.filter(customer=customer)
        assert set(mine.values_list("outcome", flat=True)) == {"refused"}
        assert not Ticket.objects.filter(customer=customer).exists()
        assert not LedgerEntry.objects.filter(customer=customer).exists()
        assert Payment.objects.get(reference="UC3AB12XY5").customer_id == other.pk


def claims_message(page: str) -> str:
    """The newest message shown on the page (the claim's answer)."""
    start = page.index('<ul class="msgs">')
    items = page[start : page.index("</ul>", start)].split("<li>")
    return items[-1]


@pytest.mark.parametrize("typed", ["UC3AB12", "UC3AB12XY7Z", "UC3AB-12XY", "ÜC3AB12XY7", ""])
def test_a_code_of_the_wrong_shape_is_a_form_error_that_changes_nothing(alpha, subscriber, typed):
    _, client = subscriber
    response, _ = post_claim(alpha, client, code=typed)
    assert response.status_code == 400
    with tenant_context(alpha.isp):
        assert not PaymentClaim.objects.exists() and not Ticket.objects.exists()


def test_a_bad_phone_or_amount_is_a_form_error(alpha, subscriber):
    _, client = subscriber
    for data in ({"phone": "12345"}, {"amount": "-5"}, {"amount": "lots"}):
        response, _ = post_claim(alpha, client, code="UC3AB12XY8", **data)
        assert response.status_code == 400
    with tenant_context(alpha.isp):
        assert not PaymentClaim.objects.exists()


def test_claims_per_account_are_limited_over_a_rolling_day(alpha, subscriber):
    customer, client = subscriber
    with tenant_context(alpha.isp):
        cfg = PortalSettings.load()
        cfg.claims_per_day = 2
        cfg.save()
    with time_machine.travel(timezone.now(), tick=False) as clock:
        for n in range(2):
            response, _ = post_claim(alpha, client, code=f"UC3AB12X0{n}")
            assert response.status_code == 302
        response, page = post_claim(alpha, client, code="UC3AB12X02")
        assert response.status_code == 429 and "many codes today" in page
        with tenant_context(alpha.isp):
            assert PaymentClaim.objects.filter(customer=customer).count() == 2
            assert not PaymentClaim.objects.filter(code="UC3AB12X02").exists()
        clock.shift(timedelta(hours=24, seconds=1))
        sign_in(alpha, client, PHONE)  # the session did not last the day either
        response, _ = post_claim(alpha, client, code="UC3AB12X02")
        assert response.status_code == 302


def test_claims_per_address_are_limited_across_accounts(alpha, subscriber, make_customer):
    _, client = subscriber
    make_customer("0722000002")
    neighbour = alpha.client()
    sign_in(alpha, neighbour, OTHER_PHONE)
    with tenant_context(alpha.isp):
        cfg = PortalSettings.load()
        cfg.claims_per_ip_per_day = 2
        cfg.save()
    assert post_claim(alpha, client, code="UC3AB12X10", ip="10.9.9.9")[0].status_code == 302
    assert post_claim(alpha, neighbour, code="UC3AB12X11", ip="10.9.9.9")[0].status_code == 302
    assert post_claim(alpha, neighbour, code="UC3AB12X12", ip="10.9.9.9")[0].status_code == 429
    assert post_claim(alpha, neighbour, code="UC3AB12X12", ip="10.9.9.8")[0].status_code == 302


def test_staff_viewing_as_the_customer_may_look_but_not_claim(alpha, make_customer):
    customer = make_customer("0712345601")
    with tenant_context(alpha.isp):
        arrived_unmatched("UC3AB12XY9", "2500.00", masked(PHONE))
    staff = alpha.client(alpha.owner)
    assert staff.post(f"/my/as/{customer.pk}/").status_code == 302
    assert staff.get("/my/claim/").status_code == 200
    response = staff.post("/my/claim/", {"code": "UC3AB12XY9"})
    assert response.status_code == 403
    with tenant_context(alpha.isp):
        assert not PaymentClaim.objects.exists()
        assert Payment.objects.get(reference="UC3AB12XY9").state == "unmatched"


def test_signed_out_visitors_are_sent_to_sign_in(alpha):
    response = alpha.client().get("/my/claim/")
    assert response.status_code == 302 and response["Location"] == "/my/"
    response = alpha.client().post("/my/claim/", {"code": "UC3AB12XY9"})
    assert response.status_code == 302


def test_the_page_costs_the_same_queries_with_many_past_claims(alpha, subscriber):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    _, client = subscriber
    post_claim(alpha, client, code="UC3AB12X40")
    client.get("/my/claim/")
    with CaptureQueriesContext(connection) as one:
        client.get("/my/claim/")
    for n in range(1, 5):
        post_claim(alpha, client, code=f"UC3AB12X4{n}")  # each a ticket
    with CaptureQueriesContext(connection) as five:
        page = client.get("/my/claim/").content.decode()
    assert page.count("Ticket T-") == 5
    assert len(five) == len(one), [q["sql"] for q in five.captured_queries]


def test_the_list_shows_only_this_accounts_claims(alpha, subscriber, make_customer):
    _, client = subscriber
    make_customer("0722000002")
    neighbour = alpha.client()
    sign_in(alpha, neighbour, OTHER_PHONE)
    post_claim(alpha, neighbour, code="UC3AB12X20")
    post_claim(alpha, client, code="UC3AB12X21")
    page = client.get("/my/claim/").content.decode()
    assert "UC3AB12X21" in page and "UC3AB12X20" not in page


def test_a_claim_that_loses_the_race_for_its_code_is_refused_and_moves_no_money(
    alpha, make_customer, monkeypatch
):
    """Two claims of one code at once are serialised by the code's lock; if one still
    got past the check, the unique constraint turns it into a refusal before any money
    moves. Here the check is made to miss the first claim."""
    with tenant_context(alpha.isp):
        first = make_customer("0712345601")
        second = make_customer("0722000003")
        payment = arrived_unmatched("UC3AB12X30", "2500.00", masked(PHONE))
        now = timezone.now()
        row = claims.claim(
            first, code="UC3AB12X30", amount=None, phone=PHONE, ip=None, now=now, actor="t"
        )
        assert row.outcome == "assigned"
        missed = claims.Checked(PaymentClaim.Outcome.ASSIGNED, "raced", payment)
        monkeypatch.setattr(claims, "_check", lambda *args: missed)
        row = claims.claim(
            second,
            code="UC3AB12X30",
            amount=None,
            phone="254722000003",
            ip=None,
            now=now,
            actor="t",
        )
        assert row.outcome == "refused" and row.detail == claims.CLAIMED
        assert LedgerEntry.objects.filter(kind="payment", reference="UC3AB12X30").count() == 1
        payment.refresh_from_db()
        assert payment.customer_id == first.pk
        with pytest.raises(IntegrityError):
            PaymentClaim.objects.create(customer=second, code="UC3AB12X30", outcome="ticket")


@pytest.mark.parametrize(
    ("msisdn", "phone", "agrees"),
    [
        ("2547 ***** 601", "0712345601", True),
        ("2547***601", "+254 712 345 601", True),
        ("0712***601", "254712345601", True),
        ("2547 ***** 601", "0712345602", False),
        ("2541 ***** 601", "0712345601", False),
        (hashlib.sha256(b"254712345601").hexdigest(), "0712345601", True),
        (hashlib.sha256(b"254712345601").hexdigest().upper(), "0712345601", True),
        (hashlib.sha256(b"254712345602").hexdigest(), "0712345601", False),
        ("254712345601", "0712 345 601", True),
        ("254712345602", "0712345601", False),
        ("***", "0712345601", False),
        ("", "0712345601", False),
        ("2547 ***** 601", "", False),
    ],
)
def test_the_payer_phone_rule(msisdn, phone, agrees):
    assert payments.payer_phone_matches(msisdn, phone) is agrees


@pytest.mark.committed
def test_two_accounts_claiming_one_code_at_once_assign_it_once(pay_world, django_db_blocker):
    """Real threads, each its own connection, on committed rows (the payments test ISP):
    two subscribers claim the same unmatched code at the same moment, both typing the
    payer's number. One gets the money, the other a refusal; the ledger has it once."""
    import random
    import threading

    from django.db import connection, connections

    from tests.payments.world import new_subscriber

    world = pay_world
    tag = f"{random.randrange(10**5):05d}"
    code = f"UC3{tag}XYZ"[:10]
    with django_db_blocker.unblock():
        with tenant_context(world.isp):
            first = new_subscriber(world, mobile=f"07126{tag}").customer
            second = new_subscriber(world, mobile=f"07127{tag}").customer
            payer = f"2547126{tag}"
            arrived_unmatched(code, "1500.00", masked(payer))
        barrier, results, errors = threading.Barrier(2), {}, []

        def claim_as(customer):
            try:
                with tenant_context(world.isp):
                    barrier.wait(timeout=10)
                    row = claims.claim(
                        customer,
                        code=code,
                        amount=Decimal("1500"),
                        phone=payer,
                        ip="10.1.1.1",
                        now=timezone.now(),
                        actor="test",
                    )
                    results[customer.pk] = (row.outcome, row.detail)
            except Exception as exc:  # reported by the assertion below
                errors.append(repr(exc))
            finally:
                connections.close_all()

        threads = [threading.Thread(target=claim_as, args=(c,)) for c in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        try:
            assert errors == []
            outcomes = sorted(outcome for outcome, _ in results.values())
            assert outcomes == ["assigned", "refused"], results
            refused = next(d for o, d in results.values() if o == "refused")
            assert refused == claims.CLAIMED
            with tenant_context(world.isp):
                payment = Payment.objects.get(reference=code)
                assert payment.state == "credited"
                winner = next(pk for pk, (o, _) in results.items() if o == "assigned")
                assert payment.customer_id == winner
                entries = LedgerEntry.objects.filter(kind="payment", reference=code)
                assert [(e.customer_id, e.amount) for e in entries] == [
                    (winner, Decimal("-1500.00"))
                ]
        finally:
            connection.set_schema_to_public()
