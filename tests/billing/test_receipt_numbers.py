"""Our own cash receipt numbers (issue 16): a cash payment staff record gets RC-000123,
the next number of the ISP's counter, on the payment, as the ledger entry's reference
(statement, receipt) and in the payment SMS. Numbers are consecutive and gap-free: the
counter row is locked for the recording transaction, and a rolled-back payment gives its
number back. The reference is optional for cash only."""

import threading

import pytest
from django.db import connection, connections, transaction
from django_tenants.utils import tenant_context

from billing import pdf
from billing.models import LedgerEntry
from ispops.messaging.models import Message
from ispops.staff.models import Role
from payments import services as payments
from payments.models import Payment, ReceiptCounter
from subscribers import services as subscribers


@pytest.fixture
def customer(in_alpha):
    return subscribers.create_customer(actor="test", name="Achieng Otieno", phone="0722000111")


def cash(customer, amount="500", reference=""):
    return payments.record_manual_payment(
        customer, method="cash", amount=amount, reference=reference, actor="test"
    )


def test_cash_without_a_slip_gets_consecutive_receipt_numbers(customer):
    first, second = cash(customer), cash(customer, "250")
    assert (first.receipt_number, second.receipt_number) == ("RC-000001", "RC-000002")
    # No slip: the receipt number is the payment's reference too.
    assert first.reference == "RC-000001"
    assert first.ledger_entry.reference == "RC-000001"
    assert first.ledger_entry.description == "Cash payment RC-000001"
    sms = Message.objects.get(related=f"payment:{first.pk}")
    assert "RC-000001" in sms.body


def test_a_slip_is_kept_beside_the_receipt_number(customer):
    payment = cash(customer, reference="SLIP-44")
    assert (payment.reference, payment.receipt_number) == ("SLIP-44", "RC-000001")
    entry = payment.ledger_entry
    assert entry.reference == "RC-000001"
    assert entry.description == "Cash payment RC-000001 (ref SLIP-44)"


def test_the_receipt_and_statement_show_the_number(customer):
    payment = cash(customer)
    receipt = pdf.receipt_html(payment.ledger_entry)
    # Our number is the receipt's number (not a second, made-up one beside it).
    assert "<td>Receipt</td><td><strong>RC-000001</strong>" in receipt
    assert "R-0" not in receipt
    assert LedgerEntry.objects.filter(customer=customer, reference="RC-000001").count() == 1


def test_only_cash_has_a_number_and_may_skip_the_reference(customer):
    bank = payments.record_manual_payment(
        customer, method="bank", amount="100", reference="BK-1", actor="t"
    )
    assert bank.receipt_number == ""
    with pytest.raises(payments.PaymentError, match="reference"):
        payments.record_manual_payment(
            customer, method="bank", amount="100", reference="", actor="t"
        )
    # Neither refusal took a number.
    assert cash(customer).receipt_number == "RC-000001"


def test_a_rolled_back_payment_gives_its_number_back(customer):
    class Undo(Exception):
        pass

    with pytest.raises(Undo), transaction.atomic():
        assert cash(customer).receipt_number == "RC-000001"
        raise Undo
    assert cash(customer).receipt_number == "RC-000001"
    assert ReceiptCounter.objects.get().next_number == 2


def test_a_refused_amount_takes_no_number(customer):
    with pytest.raises(payments.PaymentError):
        cash(customer, amount="-5")
    assert cash(customer).receipt_number == "RC-000001"


# --- the forms -------------------------------------------------------------------------


def _client(alpha, role):
    client = alpha.client(alpha.people[role])
    connection.set_tenant(alpha.isp)
    return client


def test_the_payment_form_takes_cash_without_a_reference(alpha, customer):
    client = _client(alpha, Role.FINANCE)
    response = client.post(
        f"/payments/new/?customer={customer.pk}",
        {"method": "cash", "amount": "300", "reference": "", "note": ""},
    )
    payment = Payment.objects.get(customer=customer)
    assert response.status_code == 302 and response.url == f"/payments/{payment.pk}/"
    assert payment.receipt_number == "RC-000001"
    page = client.get(response.url).content.decode()
    assert "RC-000001" in page
    refused = client.post(
        f"/payments/new/?customer={customer.pk}",
        {"method": "bank", "amount": "300", "reference": "", "note": ""},
    )
    assert refused.status_code == 400
    assert "reference" in refused.context["form"].errors
    assert Payment.objects.filter(customer=customer).count() == 1


def test_the_statement_form_takes_cash_without_a_reference(alpha, customer):
    client = _client(alpha, Role.FINANCE)
    response = client.post(
        f"/customers/{customer.pk}/statement/",
        {
            "payment-action": "payment",
            "payment-amount": "400",
            "payment-method": "cash",
            "payment-reference": "",
        },
    )
    assert response.status_code in (200, 302), response.status_code
    payment = Payment.objects.get(customer=customer)
    assert payment.receipt_number == "RC-000001"
    statement = client.get(f"/customers/{customer.pk}/statement/").content.decode()
    assert "RC-000001" in statement


# --- two clerks at once ------------------------------------------------------------------


@pytest.mark.committed
def test_two_clerks_at_once_get_consecutive_numbers_with_no_gap_or_twin(django_db_blocker):
    from ispops.tenancy.services import create_isp

    per_clerk = 15
    with django_db_blocker.unblock():
        isp, _ = create_isp(
            schema="conc_receipts",
            name="Concurrency receipts",
            domain="conc-receipts.localhost",
            owner_email="o@conc-receipts.test",
            owner_password="conc-pass-2026-r",
        )
        try:
            with tenant_context(isp):
                ids = [
                    subscribers.create_customer(
                        actor="t", name=f"Clerk {n}", phone=f"072200{n:04d}"
                    ).pk
                    for n in range(2)
                ]
            start, errors, numbers = threading.Barrier(2), [], []

            def clerk(customer_id):
                try:
                    with tenant_context(isp):
                        from subscribers.models import Customer

                        customer = Customer.objects.get(pk=customer_id)
                        start.wait(timeout=30)
                        for _ in range(per_clerk):
                            numbers.append(cash(customer, "100").receipt_number)
                except Exception as exc:  # reported by the assertion below
                    errors.append(repr(exc))
                finally:
                    connections.close_all()

            threads = [threading.Thread(target=clerk, args=(pk,)) for pk in ids]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=120)
            assert errors == []
            expected = [f"RC-{n:06d}" for n in range(1, 2 * per_clerk + 1)]
            assert sorted(numbers) == expected
            with tenant_context(isp):
                stored = sorted(Payment.objects.values_list("receipt_number", flat=True))
                assert stored == expected
                assert ReceiptCounter.objects.get().next_number == 2 * per_clerk + 1
        finally:
            connection.set_schema_to_public()
            isp.delete(force_drop=True)
