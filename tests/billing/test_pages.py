"""Billing pages: invoices (list, detail, void, email, SMS), statements with payments and
adjustments entered by hand, billing runs, aged debt, settings; who may do what."""

import itertools
from datetime import timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest
import time_machine
from django.utils import timezone
from django_tenants.utils import tenant_context

from billing import services
from billing.models import BillingRun, BillingSettings, Invoice, LedgerEntry
from billing.tasks import email_invoice, run_billing_task
from ispops.audit.models import AuditEntry
from subscribers import services as subscribers
from subscribers.models import Plan

D = Decimal
_n = itertools.count(1)


def make_postpaid_customer(plan, name="Achieng Otieno", **fields):
    n = next(_n)
    customer = subscribers.create_customer(
        actor="test", name=name, phone=f"0711{n:06d}", email=f"c{n}@example.com", **fields
    )
    account = subscribers.create_service_account(
        actor="test",
        customer=customer,
        plan=plan,
        username=f"pp{n}",
        password="pw",
        status="active",
    )
    return customer, account


@pytest.fixture
def billed(in_alpha):
    """A postpaid customer of alpha with one open invoice from today's billing run."""
    BillingSettings.load()
    BillingSettings.objects.filter(pk=1).update(
        legal_name="Alpha Net Limited", paybill="247247", kra_pin="P051234567X"
    )
    plan = Plan.objects.create(
        name="Postpaid 10M",
        price="2320.00",
        billing="postpaid",
        download_kbps=10_000,
        upload_kbps=5_000,
    )
    customer, account = make_postpaid_customer(plan)
    run = services.run_billing(timezone.localdate(), actor="test")
    invoice = customer.invoices.get()
    return SimpleNamespace(plan=plan, customer=customer, account=account, run=run, invoice=invoice)


def _balance(alpha, customer):
    with tenant_context(alpha.isp):
        return services.customer_balance(customer)


def test_billing_run_makes_the_invoice_the_pages_show(alpha, billed):
    assert billed.invoice.total == D("2320.00")
    assert billed.invoice.vat == D("320.00")
    html = alpha.client(alpha.finance).get(f"/invoices/{billed.invoice.pk}/").content.decode()
    assert billed.invoice.number in html
    assert billed.customer.account in html
    assert "KES 2,320.00" in html


# --- void ---------------------------------------------------------------------------


def test_void_creates_a_credit_note_and_the_balance_drops_by_the_total(alpha, billed):
    before = _balance(alpha, billed.customer)
    response = alpha.client(alpha.finance).post(
        f"/invoices/{billed.invoice.pk}/void/", {"reason": "Billed in error"}
    )
    assert response.status_code == 302
    with tenant_context(alpha.isp):
        invoice = Invoice.objects.get(pk=billed.invoice.pk)
        assert invoice.status == Invoice.Status.VOID
        assert invoice.void_reason == "Billed in error"
        # A credit note document credits the invoice; its ledger entry takes the total off.
        document = invoice.credit_notes.get()
        assert document.total == -invoice.total and document.number.startswith("CN-")
        note = LedgerEntry.objects.get(invoice=document, kind=LedgerEntry.Kind.CREDIT_NOTE)
        assert note.amount == -invoice.total
        assert note.reference == document.number
    assert before - _balance(alpha, billed.customer) == billed.invoice.total


def test_void_without_a_reason_is_refused_and_changes_nothing(alpha, billed):
    response = alpha.client(alpha.owner).post(f"/invoices/{billed.invoice.pk}/void/", {})
    assert response.status_code == 400
    with tenant_context(alpha.isp):
        assert Invoice.objects.get(pk=billed.invoice.pk).status == Invoice.Status.OPEN


def test_voiding_twice_says_it_is_already_void(alpha, billed):
    client = alpha.client(alpha.admin)
    client.post(f"/invoices/{billed.invoice.pk}/void/", {"reason": "Duplicate"})
    response = client.post(f"/invoices/{billed.invoice.pk}/void/", {"reason": "Again"}, follow=True)
    assert "already void" in response.content.decode()
    with tenant_context(alpha.isp):
        assert (
            LedgerEntry.objects.filter(
                invoice__credits=billed.invoice, kind=LedgerEntry.Kind.CREDIT_NOTE
            ).count()
            == 1
        )


# --- payments and adjustments on the statement ------------------------------------------


def _pay(client, customer, amount, reference, method="cash"):
    return client.post(
        f"/customers/{customer.pk}/statement/",
        {
            "payment-action": "payment",
            "payment-amount": amount,
            "payment-method": method,
            "payment-reference": reference,
        },
    )


def test_a_payment_pays_the_oldest_open_invoice_first(alpha, billed):
    with tenant_context(alpha.isp):
        # The next period's invoice: a later due date.
        later = timezone.localdate() + timedelta(days=40)
        with time_machine.travel(later, tick=False):
            services.run_billing(later, actor="test")
        older, newer = billed.customer.invoices.order_by("due_on")
    response = _pay(alpha.client(alpha.finance), billed.customer, "2320.00", "SLIP-001")
    assert response.status_code == 302
    with tenant_context(alpha.isp):
        older.refresh_from_db()
        newer.refresh_from_db()
        assert (older.status, older.amount_paid) == (Invoice.Status.PAID, D("2320.00"))
        assert (newer.status, newer.amount_paid) == (Invoice.Status.OPEN, D("0.00"))
        payment = LedgerEntry.objects.get(customer=billed.customer, kind="payment")
        assert payment.amount == D("-2320.00")
        assert payment.description.startswith("Cash payment")
        assert payment.actor == alpha.finance


def test_a_payment_reference_is_taken_once_per_customer(alpha, billed):
    client = alpha.client(alpha.finance)
    assert _pay(client, billed.customer, "1000", "BANK-77").status_code == 302
    again = _pay(client, billed.customer, "1000", "bank-77", method="bank")
    assert again.status_code == 400
    assert "already on this customer" in again.content.decode()
    with tenant_context(alpha.isp):
        assert LedgerEntry.objects.filter(customer=billed.customer, kind="payment").count() == 1


def test_a_payment_needs_an_amount_above_zero(alpha, billed):
    response = _pay(alpha.client(alpha.finance), billed.customer, "0", "X-1")
    assert response.status_code == 400
    with tenant_context(alpha.isp):
        assert not LedgerEntry.objects.filter(customer=billed.customer, kind="payment").exists()


def test_a_credit_note_from_the_statement_is_numbered_and_pays_the_invoice(alpha, billed):
    response = alpha.client(alpha.finance).post(
        f"/customers/{billed.customer.pk}/statement/",
        {
            "adjustment-action": "adjustment",
            "adjustment-kind": "credit_note",
            "adjustment-amount": "2320.00",
            "adjustment-reason": "Outage goodwill",
        },
    )
    assert response.status_code == 302
    with tenant_context(alpha.isp):
        note = LedgerEntry.objects.get(customer=billed.customer, kind="credit_note")
        assert note.amount == D("-2320.00") and note.reference.startswith("CN-")
        assert Invoice.objects.get(pk=billed.invoice.pk).status == Invoice.Status.PAID
        assert services.customer_balance(billed.customer) == D("0.00")


def test_a_signed_adjustment_raises_or_lowers_the_balance(alpha, billed):
    client = alpha.client(alpha.owner)
    url = f"/customers/{billed.customer.pk}/statement/"
    for amount in ("150.00", "-50.00"):
        response = client.post(
            url,
            {
                "adjustment-action": "adjustment",
                "adjustment-kind": "adjustment",
                "adjustment-amount": amount,
                "adjustment-reason": "Cable",
            },
        )
        assert response.status_code == 302
    assert _balance(alpha, billed.customer) == D("2420.00")
    bad = client.post(
        url,
        {
            "adjustment-action": "adjustment",
            "adjustment-kind": "credit_note",
            "adjustment-amount": "-10",
            "adjustment-reason": "Wrong sign",
        },
    )
    assert bad.status_code == 400


def test_statement_running_balance_equals_the_ledger_balance(alpha, billed):
    client = alpha.client(alpha.finance)
    _pay(client, billed.customer, "500", "PART-1")
    _pay(client, billed.customer, "3000", "PART-2", method="mpesa-manual")
    response = alpha.client(alpha.support).get(f"/customers/{billed.customer.pk}/statement/")
    assert response.status_code == 200
    rows = list(response.context["page"])
    newest_entry, newest_running = rows[0]
    assert newest_entry.reference == "PART-2"
    expected = _balance(alpha, billed.customer)
    assert newest_running == expected == response.context["balance"] == D("-1180.00")
    html = response.content.decode()
    assert "-KES 1,180.00" in html and "receipt" in html
    # Support reads, but is offered no form.
    assert 'id="record-payment"' not in html


# --- invoices list ------------------------------------------------------------------------


@pytest.fixture
def thirty_invoices(billed):
    for i in range(29):
        make_postpaid_customer(billed.plan, name=f"Many Invoices {i:02d}")
    services.run_billing(timezone.localdate(), actor="test")
    assert Invoice.objects.count() == 30
    return billed


def test_invoice_list_paginates_and_totals_the_filtered_set(
    alpha, thirty_invoices, django_assert_max_num_queries
):
    client = alpha.client(alpha.finance)
    client.get("/invoices/")  # warm the host cache and the session
    with django_assert_max_num_queries(8):
        response = client.get("/invoices/")
    page = response.context["page"]
    assert len(page) == 25 and page.paginator.count == 30
    totals = response.context["totals"]
    assert totals["count"] == 30
    assert totals["invoiced"] == totals["outstanding"] == D("2320.00") * 30
    second = client.get("/invoices/", {"page": 2})
    assert len(second.context["page"]) == 5


def test_invoice_list_filters(alpha, thirty_invoices):
    billed = thirty_invoices
    client = alpha.client(alpha.finance)

    def numbers(**params):
        return {i.number for i in client.get("/invoices/", params).context["page"]}

    assert numbers(q=billed.customer.account) == {billed.invoice.number}
    assert numbers(q=billed.invoice.number) == {billed.invoice.number}
    assert numbers(q="achieng") == {billed.invoice.number}
    assert numbers(status="paid") == set()
    assert numbers(overdue="on") == set()  # nothing is due yet
    today = timezone.localdate()
    assert len(numbers(issued_from=today.isoformat(), issued_to=today.isoformat())) == 25
    assert numbers(issued_from=(today + timedelta(days=1)).isoformat()) == set()
    with tenant_context(alpha.isp):
        Invoice.objects.filter(pk=billed.invoice.pk).update(due_on=today - timedelta(days=3))
    response = client.get("/invoices/", {"overdue": "on"})
    assert {i.number for i in response.context["page"]} == {billed.invoice.number}
    assert response.context["totals"]["outstanding"] == D("2320.00")


def test_invoice_list_answers_htmx_with_the_results_only(alpha, billed):
    response = alpha.client(alpha.finance).get(
        "/invoices/", {"q": billed.customer.account}, HTTP_HX_REQUEST="true"
    )
    html = response.content.decode()
    assert billed.invoice.number in html and "<html" not in html


def test_invoices_of_one_isp_are_not_reachable_from_another(alpha, beta, billed):
    response = beta.client(beta.owner).get(f"/invoices/{billed.invoice.pk}/")
    assert response.status_code == 404
    listing = beta.client(beta.owner).get("/invoices/")
    assert listing.context["totals"]["count"] == 0


# --- email and SMS --------------------------------------------------------------------


def test_email_is_queued_after_commit(alpha, billed, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = alpha.client(alpha.finance).post(f"/invoices/{billed.invoice.pk}/email/")
    assert response.status_code == 302
    assert len(callbacks) == 1


def test_email_task_sends_the_pdf_to_the_customer(in_alpha, billed, mailoutbox):
    assert email_invoice(billed.invoice.pk) == "sent"
    (message,) = mailoutbox
    assert message.to == [billed.customer.email]
    assert billed.invoice.number in message.subject
    assert "247247" in message.body and billed.customer.account in message.body
    (name, content, mimetype) = message.attachments[0]
    assert name == f"{billed.invoice.number}.pdf"
    assert mimetype == "application/pdf" and content.startswith(b"%PDF")


def test_sms_sends_the_invoice_with_the_paybill_and_account(alpha, billed):
    from ispops.messaging.models import Message

    response = alpha.client(alpha.finance).post(f"/invoices/{billed.invoice.pk}/sms/")
    assert response.status_code == 302
    with tenant_context(alpha.isp):
        # The newest: the billing run that made the invoice announced it too.
        message = Message.objects.filter(related=f"invoice:{billed.invoice.pk}").latest("id")
    assert message.channel == "sms" and message.template_key == "invoice_issued"
    assert billed.invoice.number in message.body
    assert "247247" in message.body and billed.customer.account in message.body


# --- billing runs ----------------------------------------------------------------------


def test_run_billing_task_in_process_invoices_an_active_postpaid_account(in_alpha):
    plan = Plan.objects.create(
        name="Postpaid 5M",
        price="1160.00",
        billing="postpaid",
        download_kbps=5000,
        upload_kbps=2000,
    )
    customer, _ = make_postpaid_customer(plan, name="Task Customer")
    run_id = run_billing_task(timezone.localdate().isoformat(), "finance@alpha.test")
    run = BillingRun.objects.get(pk=run_id)
    assert run.state == BillingRun.State.DONE
    assert run.invoice_count == 1 and run.started_by == "finance@alpha.test"
    assert customer.invoices.get().total == D("1160.00")


def test_run_start_queues_the_run_after_commit(alpha, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = alpha.client(alpha.finance).post("/billing/runs/start/")
    assert response.status_code == 302 and response["Location"] == "/billing/runs/"
    assert len(callbacks) == 1
    assert alpha.client(alpha.finance).get("/billing/runs/start/").status_code == 405


def test_run_page_polls_while_running_and_htmx_gets_the_fragment(alpha, billed):
    client = alpha.client(alpha.finance)
    page = client.get(f"/billing/runs/{billed.run.pk}/")
    html = page.content.decode()
    assert page.status_code == 200 and billed.invoice.number in html
    assert 'hx-trigger="every 2s"' not in html  # finished: no polling
    with tenant_context(alpha.isp):
        running = BillingRun.objects.create(
            run_date=timezone.localdate(),
            total_accounts=200,
            processed=50,
            started_by="t",
            errors=[
                {"account": 7, "error": "plan has no price"},
                {"accounts": "1..9", "error": "x"},
            ],
        )
    fragment = client.get(f"/billing/runs/{running.pk}/", HTTP_HX_REQUEST="true")
    html = fragment.content.decode()
    assert "<html" not in html and 'id="run-progress"' in html
    assert 'hx-trigger="every 2s"' in html and "25%" in html
    assert "plan has no price" in html and "1..9" in html
    listing = client.get("/billing/runs/").content.decode()
    assert f"/billing/runs/{running.pk}/" in listing


# --- aged debt and settings -------------------------------------------------------------


def test_aged_debt_shows_buckets_and_top_debtors(alpha, billed):
    with tenant_context(alpha.isp):
        Invoice.objects.filter(pk=billed.invoice.pk).update(
            due_on=timezone.localdate() - timedelta(days=45)
        )
    response = alpha.client(alpha.finance).get("/billing/aged-debt/")
    assert response.status_code == 200
    bars = {bar["key"]: bar["amount"] for bar in response.context["bars"]}
    assert bars["31-60"] == D("2320.00") and bars["current"] == 0
    (debtor,) = response.context["debtors"]
    assert debtor["customer__account"] == billed.customer.account
    assert debtor["outstanding"] == D("2320.00")
    assert "<svg" in response.content.decode()


def _settings_post(**changes):
    data = {
        "legal_name": "Alpha Net Limited",
        "address": "Kilimani, Nairobi",
        "kra_pin": "P051234567X",
        "paybill": "400200",
        "phone": "0722000000",
        "email": "billing@alpha.test",
        "anchor": "anniversary",
        "fixed_day": "1",
        "vat_rate": "16.00",
        "vat_inclusive": "on",
        "due_days": "10",
        "when_suspended": "pause",
        "prepaid_partial": "credit",
        "invoice_prefix": "inv",
        "credit_note_prefix": "CN",
        "reminder_days_before": "1, 3, 3",
        "reminder_days_after": "7,1",
        "grace_days": "2",
        "hard_suspend_after_days": "14",
    }
    data.update(changes)
    return data


def test_owner_saves_settings_without_touching_the_counters(alpha):
    with tenant_context(alpha.isp):
        BillingSettings.load()
        BillingSettings.objects.filter(pk=1).update(next_invoice_number=42)
    client = alpha.client(alpha.owner)
    response = client.post(
        "/billing/settings/", _settings_post(next_invoice_number="1", paybill="400200")
    )
    assert response.status_code == 302
    with tenant_context(alpha.isp):
        cfg = BillingSettings.objects.get(pk=1)
        assert cfg.paybill == "400200" and cfg.due_days == 10
        assert cfg.invoice_prefix == "INV"
        assert cfg.reminder_days_before == [3, 1] and cfg.reminder_days_after == [1, 7]
        assert cfg.next_invoice_number == 42
        assert AuditEntry.objects.filter(model="billing.billingsettings").exists()
    page = client.get("/billing/settings/").content.decode()
    assert "400200" in page and 'id="history"' in page


def test_settings_refuse_bad_day_lists(alpha):
    response = alpha.client(alpha.admin).post(
        "/billing/settings/", _settings_post(reminder_days_before="3, soon")
    )
    assert response.status_code == 200
    assert "not a whole number" in response.content.decode()


# --- who may do what --------------------------------------------------------------------


def _pages(billed, payment_pk):
    inv, cust = billed.invoice.pk, billed.customer.pk
    return {
        "read": [
            "/invoices/",
            f"/invoices/{inv}/",
            f"/invoices/{inv}/pdf/",
            f"/customers/{cust}/statement/",
            f"/receipts/{payment_pk}/pdf/",
        ],
        "finance": ["/billing/runs/", f"/billing/runs/{billed.run.pk}/", "/billing/aged-debt/"],
        "managers": ["/billing/settings/"],
        "posts": [
            f"/invoices/{inv}/void/",
            f"/invoices/{inv}/email/",
            f"/invoices/{inv}/sms/",
            f"/customers/{cust}/statement/",
            "/billing/runs/start/",
            "/billing/settings/",
        ],
    }


@pytest.fixture
def payment(billed):
    return services.record_payment(billed.customer, "100", actor="test", reference="R-1")


def test_technician_is_refused_everywhere(alpha, billed, payment):
    pages = _pages(billed, payment.pk)
    client = alpha.client(alpha.technician)
    for url in pages["read"] + pages["finance"] + pages["managers"]:
        assert client.get(url).status_code == 403, url
    for url in pages["posts"]:
        assert client.post(url, {"reason": "x"}).status_code == 403, url


def test_support_reads_invoices_and_statements_but_changes_nothing(alpha, billed, payment):
    pages = _pages(billed, payment.pk)
    client = alpha.client(alpha.support)
    for url in pages["read"]:
        assert client.get(url).status_code == 200, url
    for url in pages["finance"] + pages["managers"]:
        assert client.get(url).status_code == 403, url
    for url in pages["posts"]:
        assert client.post(url, {"reason": "x"}).status_code == 403, url
    detail = client.get(f"/invoices/{billed.invoice.pk}/").content.decode()
    assert "Void invoice" not in detail
    with tenant_context(alpha.isp):
        assert Invoice.objects.get(pk=billed.invoice.pk).status == Invoice.Status.OPEN


def test_finance_works_billing_but_not_its_settings(alpha, billed, payment):
    pages = _pages(billed, payment.pk)
    client = alpha.client(alpha.finance)
    for url in pages["read"] + pages["finance"]:
        assert client.get(url).status_code == 200, url
    assert client.get("/billing/settings/").status_code == 403
    assert alpha.client(alpha.admin).get("/billing/settings/").status_code == 200


def test_logo_upload_is_kept_and_other_files_are_refused(alpha, settings, tmp_path):
    import io

    from django.core.files.uploadedfile import SimpleUploadedFile
    from PIL import Image

    settings.MEDIA_ROOT = tmp_path
    buffer = io.BytesIO()
    Image.new("RGB", (30, 10), (11, 110, 79)).save(buffer, format="PNG")
    client = alpha.client(alpha.owner)
    refused = client.post(
        "/billing/settings/",
        _settings_post(logo=SimpleUploadedFile("logo.exe", b"MZ", "application/octet-stream")),
    )
    assert refused.status_code == 200 and "logo" in refused.context["form"].errors
    saved = client.post(
        "/billing/settings/",
        _settings_post(logo=SimpleUploadedFile("logo.png", buffer.getvalue(), "image/png")),
    )
    assert saved.status_code == 302
    with tenant_context(alpha.isp):
        name = BillingSettings.objects.get(pk=1).logo.name
    assert name.startswith("logos/") and (tmp_path / name).exists()


def test_branch_limited_staff_see_only_their_branches_invoices(alpha, billed):
    from ispops.staff.models import Branch

    with tenant_context(alpha.isp):
        far = Branch.objects.create(name="Far away", code="far")
        alpha.finance.branches.add(far)
        entry = services.record_payment(billed.customer, "10", actor="test", reference="B-1")
    client = alpha.client(alpha.finance)
    assert client.get(f"/invoices/{billed.invoice.pk}/").status_code == 404
    assert client.get("/invoices/").context["totals"]["count"] == 0
    assert client.get(f"/customers/{billed.customer.pk}/statement/").status_code == 404
    assert client.get(f"/receipts/{entry.pk}/pdf/").status_code == 404
    assert client.post(f"/invoices/{billed.invoice.pk}/void/", {"reason": "x"}).status_code == 404
