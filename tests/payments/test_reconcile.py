"""Reconciling an M-Pesa statement (the org portal's CSV) against the payments ispops
recorded: reading the file, the three lists, recording what ispops missed (once), bad
files refused; who may do it."""

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django_tenants.utils import tenant_context

from billing import services as billing
from payments import reconcile
from payments.models import Payment, StatementUpload
from subscribers import services as subscribers

D = Decimal
NAIROBI = ZoneInfo("Africa/Nairobi")
HEADER = (
    "Receipt No.,Completion Time,Initiation Time,Details,Transaction Status,Paid In,"
    "Withdrawn,Balance,Balance Confirmed,Reason Type,Other Party Info,Linked Transaction ID,"
    "A/C No."
)


def at(day, hour=10, minute=0):
    return datetime(2025, 3, day, hour, minute, tzinfo=NAIROBI)


def statement_csv(account: str) -> bytes:
    """A March 2025 statement as the portal exports it: preamble, header, then rows."""
    lines = [
        "Account Holder:,Alpha Net Limited",
        "Short Code:,174379",
        "Account:,Utility Account",
        "Time Period:,From 01-03-2025 00:00:00 To 31-03-2025 23:59:59",
        "Report Date:,01-04-2025 08:00:00",
        "",
        HEADER,
        # known to ispops, same amount
        "TC51KNOWN1,2025-03-05 10:00:00,2025-03-05 10:00:00,Pay Bill Online from 2547 ***** 149"
        ' - JANE DOE Acc. C00001,Completed,"1,500.00",,"11,500.00",true,Pay Bill Online,,,C00001',
        # never reached ispops: the customer typed their account number
        "TC61UNSEEN,2025-03-06 09:30:00,2025-03-06 09:30:00,Pay Bill from 254712***678"
        f' - WANJIRU KAMAU Acc. {account.lower()},Completed,"2,000.00",,"13,500.00",true,'
        "Pay Bill,,,",
        # in ispops with another amount
        "TC71DIFFER,2025-03-07 11:00:00,2025-03-07 11:00:00,Pay Bill from 2547 ***** 222 -"
        ' OTIENO Acc. C00009,Completed,"1,200.00",,"14,700.00",true,Pay Bill,,,',
        # the charge of a withdrawal and a failed payment do not count
        'TC81CHARGE,2025-03-08 12:00:00,,Business Charge,Completed,,"30.00","14,670.00",'
        "true,Charge,,,",
        "TC91FAILED,2025-03-09 12:00:00,,Pay Bill from 2547 ***** 333 - X Acc. C00002,"
        'Failed,"500.00",,"14,670.00",true,Pay Bill,,,',
        "",
        "Total,,,,,,,,,,,,",
    ]
    return ("\r\n".join(lines) + "\r\n").encode()


@pytest.fixture
def books(alpha):
    """alpha's customer and the M-Pesa payments ispops holds for March (and one after)."""
    with tenant_context(alpha.isp):
        customer = subscribers.create_customer(
            actor="test", name="Wanjiru Kamau", phone="0712345678", email="wk@example.com"
        )
        billing.record_entry(customer, "adjustment", "2000", actor="test", description="Owed")

        def paid(reference, amount, when, **fields):
            return Payment.objects.create(
                method="mpesa",
                reference=reference,
                amount=D(amount),
                paid_at=when,
                state="credited",
                **fields,
            )

        known = paid("TC51KNOWN1", "1500.00", at(5))
        differ = paid("TC71DIFFER", "1000.00", at(7, 11))
        extra = paid("TCA1EXTRA1", "700.00", at(10), account_reference="C00077")
        paid("TD11APRIL1", "999.00", datetime(2025, 4, 3, tzinfo=NAIROBI))  # after the period
        Payment.objects.create(method="cash", reference="SLIP-9", amount=D("50"), paid_at=at(12))
    return customer, known, differ, extra


def upload(client, data: bytes, name="statement-march.csv"):
    return client.post(
        "/payments/reconcile/",
        {"statement": SimpleUploadedFile(name, data, content_type="text/csv")},
    )


def _uploads(alpha) -> int:
    with tenant_context(alpha.isp):
        return StatementUpload.objects.count()


# --- reading the file --------------------------------------------------------------------


def test_the_parser_finds_the_header_below_the_preamble_and_keeps_completed_money_in():
    parsed = reconcile.parse_statement(statement_csv("C00042"))
    assert [row["receipt"] for row in parsed.rows] == ["TC51KNOWN1", "TC61UNSEEN", "TC71DIFFER"]
    assert [row["amount"] for row in parsed.rows] == ["1500.00", "2000.00", "1200.00"]
    assert parsed.total == D("4700.00")
    # the period stated in the preamble, in Nairobi time
    assert parsed.period_start == datetime(2025, 3, 1, tzinfo=NAIROBI)
    assert parsed.period_end == datetime(2025, 3, 31, 23, 59, 59, tzinfo=NAIROBI)
    assert parsed.rows[0]["at"] == "2025-03-05T10:00:00+03:00"


def test_the_parser_takes_any_case_no_withdrawn_or_balance_and_a_bom():
    data = (
        "\ufeffRECEIPT NO.,completion time,DETAILS,transaction status,PAID IN\n"
        'QWE1234567,31/03/2025 18:05:00,Pay Bill from X - Y Acc. ab12,COMPLETED,"12,345.50"\n'
    ).encode()
    parsed = reconcile.parse_statement(data)
    assert parsed.rows == [
        {
            "receipt": "QWE1234567",
            "amount": "12345.50",
            "at": "2025-03-31T18:05:00+03:00",
            "details": "Pay Bill from X - Y Acc. ab12",
        }
    ]
    # without a stated period, the period is that of the rows
    assert parsed.period_start == parsed.period_end == datetime(2025, 3, 31, 18, 5, tzinfo=NAIROBI)


def test_the_account_and_payer_are_read_from_the_details():
    details = "Pay Bill Online from 2547 ***** 149 - JANE W DOE Acc. c00001"
    assert reconcile.account_in(details) == "C00001"
    assert reconcile.payer_in(details) == ("2547 ***** 149", "JANE W DOE")
    assert reconcile.account_in("Merchant Payment from 254712***678 - ACCOUNTANT") == ""


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"PK\x03\x04\x14\x00\x06\x00binary", "spreadsheet"),
        (b"\x00\x01\x02\x03 garbage", "binary"),
        (b"name,amount\nJane,100\n", "no header row"),
        (
            (HEADER + "\nTC51KNOWN1,yesterday,,x,Completed,100,,,,,,,\n").encode(),
            "line 2: completion time 'yesterday'",
        ),
        ((HEADER + "\nTC51KNOWN1,2025-03-05 10:00,,x,Completed,1O0,,,,,,,\n").encode(), "1O0"),
    ],
)
def test_the_parser_refuses_what_it_cannot_read_with_the_reason(data, reason):
    with pytest.raises(reconcile.StatementError, match=reason):
        reconcile.parse_statement(data)


# --- the page ----------------------------------------------------------------------------


def test_the_three_lists_show_what_differs(alpha, books):
    customer, _, differ, _ = books
    client = alpha.client(alpha.finance)
    response = upload(client, statement_csv(customer.account))
    assert response.status_code == 302
    with tenant_context(alpha.isp):
        saved = StatementUpload.objects.get()
    assert response["Location"] == f"/payments/reconcile/{saved.pk}/"
    assert saved.uploaded_by == alpha.finance.email
    assert saved.total == D("4700.00") and len(saved.rows) == 3
    assert saved.period_start == datetime(2025, 3, 1, tzinfo=NAIROBI)

    with tenant_context(alpha.isp):
        result = reconcile.compare(saved)
    assert [row["receipt"] for row in result.missing] == ["TC61UNSEEN"]
    assert result.missing[0]["account"] == customer.account
    assert [p.reference for p in result.extra] == ["TCA1EXTRA1"]
    assert [(row["receipt"], p.pk, diff) for row, p, diff in result.mismatched] == [
        ("TC71DIFFER", differ.pk, D("200.00"))
    ]
    assert result.matched == 1 and result.matched_total == D("1500.00")
    assert result.ispops_total == D("3200.00")  # April's payment and the cash slip left out

    html = client.get(response["Location"]).content.decode()
    missing = html.split('id="missing"')[1].split('id="extra"')[0]
    extra_part = html.split('id="extra"')[1].split('id="mismatched"')[0]
    mismatch = html.split('id="mismatched"')[1].split('id="uploads"')[0]
    assert "TC61UNSEEN" in missing and 'value="TC61UNSEEN"' in missing
    assert "TC51KNOWN1" not in html.split('id="missing"')[1]
    assert "TCA1EXTRA1" in extra_part and "TD11APRIL1" not in html and "SLIP-9" not in html
    assert "TC71DIFFER" in mismatch and "KES 1,200.00" in mismatch and "KES 200.00" in mismatch
    assert "statement-march.csv" in html.split('id="uploads"')[1]


def test_record_credits_the_unseen_payment_once_even_when_posted_twice(alpha, books):
    customer = books[0]
    client = alpha.client(alpha.finance)
    location = upload(client, statement_csv(customer.account))["Location"]
    first = client.post(location + "record/", {"receipt": "TC61UNSEEN"}, follow=True)
    assert "recorded and credited to Wanjiru Kamau" in first.content.decode()
    second = client.post(location + "record/", {"receipt": "tc61unseen"}, follow=True)
    assert "TC61UNSEEN was already recorded (credited)" in second.content.decode()

    with tenant_context(alpha.isp):
        payments = list(Payment.objects.filter(reference="TC61UNSEEN"))
        assert len(payments) == 1
        payment = payments[0]
        assert payment.method == "mpesa" and payment.amount == D("2000.00")
        assert payment.state == Payment.State.CREDITED and payment.customer == customer
        assert payment.paid_at == at(6, 9, 30)
        assert payment.account_reference == customer.account
        assert payment.payer_name == "WANJIRU KAMAU"
        assert payment.recorded_by == alpha.finance.email
        assert billing.customer_balance(customer) == D("0.00")  # owed 2,000, paid 2,000

    html = second.content.decode()
    assert 'value="TC61UNSEEN"' not in html  # no longer in "not in ispops"


def test_a_recorded_payment_nobody_owns_waits_unmatched(alpha, books):
    client = alpha.client(alpha.owner)
    location = upload(client, statement_csv("NOSUCHACC9"))["Location"]
    response = client.post(location + "record/", {"receipt": "TC61UNSEEN"}, follow=True)
    assert "it waits among the unmatched payments" in response.content.decode()
    with tenant_context(alpha.isp):
        payment = Payment.objects.get(reference="TC61UNSEEN")
    assert payment.state == Payment.State.UNMATCHED and payment.customer is None
    assert payment.account_reference == "NOSUCHACC9"


def test_record_refuses_a_receipt_not_in_the_statement(alpha, books):
    client = alpha.client(alpha.owner)
    location = upload(client, statement_csv(books[0].account))["Location"]
    response = client.post(location + "record/", {"receipt": "TZZZZZZZZZ"}, follow=True)
    assert "Receipt TZZZZZZZZZ is not in this statement." in response.content.decode()
    assert client.get(location + "record/").status_code == 405
    with tenant_context(alpha.isp):
        assert not Payment.objects.filter(reference="TZZZZZZZZZ").exists()


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
        (b"this,is,not\na,statement,at all\n", "no header row found"),
        (("x" * 99 + "\n").encode() * (53 * 1024), "over 5 MB"),
    ],
)
def test_a_bad_file_is_refused_with_400_and_nothing_saved(alpha, data, says):
    response = upload(alpha.client(alpha.finance), data)
    assert response.status_code == 400
    assert says in response.content.decode()
    assert _uploads(alpha) == 0


def test_no_file_at_all_is_refused_with_400(alpha):
    response = alpha.client(alpha.finance).post("/payments/reconcile/", {})
    assert response.status_code == 400
    assert _uploads(alpha) == 0


def test_previous_uploads_are_listed_newest_first(alpha, books):
    client = alpha.client(alpha.admin)
    upload(client, statement_csv(books[0].account), name="february.csv")
    upload(client, statement_csv(books[0].account), name="march.csv")
    html = client.get("/payments/reconcile/").content.decode()
    listed = html.split('id="uploads"')[1]
    assert listed.index("march.csv") < listed.index("february.csv")


def test_support_and_technicians_may_not_reconcile(alpha):
    for user in (alpha.support, alpha.technician):
        client = alpha.client(user)
        assert client.get("/payments/reconcile/").status_code == 403
        assert upload(client, b"Receipt No.\n").status_code == 403


def test_a_statement_with_an_overlong_cell_is_refused_with_400_and_nothing_saved(alpha):
    # A 128 KB cell is over the csv module's own limit: it used to raise (a 500).
    data = statement_csv("C00001").replace(b"Alpha Net Limited", b"x" * (128 * 1024 + 1))
    response = upload(alpha.client(alpha.finance), data)
    assert response.status_code == 400
    assert "characters long" in response.content.decode()
    assert _uploads(alpha) == 0
