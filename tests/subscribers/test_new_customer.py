"""A new customer in one form (issue 16): contact, plan, login, router and "activate
now" in one step. Prepaid: the first payment buys the first term (active AND paid);
postpaid: the first prorated invoice; neither: a lead in the pipeline. A welcome SMS
follows activation. Bad input is a form error that writes nothing."""

from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from billing.models import BillingSettings, Invoice, LedgerEntry
from ispops.audit.models import AuditEntry
from ispops.messaging.models import Message
from ispops.staff.models import Branch, Role
from network.models import Router, RouterJob
from payments.models import Payment
from subscribers import services
from subscribers.models import Customer, Installation, Plan, ServiceAccount, StatusChange

D = Decimal
URL = "/subscribers/sign-up/"


@pytest.fixture
def prepaid(in_alpha):
    cfg = BillingSettings.load()
    cfg.paybill = "247247"
    cfg.save()
    return Plan.objects.create(
        name="Home Prepaid 10M", price="2500.00", download_kbps=10_000, upload_kbps=5_000
    )


@pytest.fixture
def postpaid(in_alpha):
    return Plan.objects.create(
        name="Business 20M",
        price="6000.00",
        download_kbps=20_000,
        upload_kbps=20_000,
        billing="postpaid",
    )


def staff(alpha, role):
    """A logged-in client of `role`; the test body stays in alpha's schema (logging in
    goes back to the public one)."""
    client = alpha.client(alpha.people[role])
    connection.set_tenant(alpha.isp)
    return client


def form(chosen, **fields):
    data = {
        "name": "Wanjiru Kamau",
        "phone": "0712 345 678",
        "email": "wanjiru@example.com",
        "address": "Plot 12, Kamakis",
        "plan": chosen.pk,
        "username": "",
        "password": "",
        "activate_now": "on",
        "payment_amount": "2500",
        "payment_method": "cash",
        "payment_reference": "",
    }
    data.update(fields)
    return {k: v for k, v in data.items() if v is not None}


def written():
    """Every kind of row a sign-up writes, counted."""
    return {
        "customers": Customer.objects.count(),
        "accounts": ServiceAccount.objects.count(),
        "status changes": StatusChange.objects.count(),
        "installations": Installation.objects.count(),
        "payments": Payment.objects.count(),
        "ledger": LedgerEntry.objects.count(),
        "invoices": Invoice.objects.count(),
        "messages": Message.objects.count(),
        "router jobs": RouterJob.objects.count(),
    }


def test_prepaid_activate_now_with_cash_is_active_paid_and_welcomed(alpha, prepaid):
    client = staff(alpha, Role.SUPPORT)
    before = timezone.now()
    response = client.post(URL, form(prepaid))
    customer = Customer.objects.get(name="Wanjiru Kamau")
    assert response.status_code == 302 and response.url == f"/subscribers/{customer.pk}/"
    account = customer.service_accounts.get()
    # Active AND paid: the expiry is a month away, not "now".
    assert account.status == "active"
    assert account.expires_at > before + timezone.timedelta(days=27)
    # A login was generated (the account number) with a password.
    assert account.username == customer.account.lower() and account.password
    # One audited status change into service, its reason written by the system.
    (move,) = StatusChange.objects.filter(service_account=account, to_status="active")
    assert (move.from_status, move.actor_id) == ("installing", alpha.support.pk)
    assert move.reason == "Activated at sign-up by Support Alpha Net"
    # The cash payment has our receipt number, on the payment and the ledger entry.
    payment = Payment.objects.get(customer=customer)
    assert payment.method == "cash" and payment.amount == D("2500.00")
    assert payment.receipt_number.startswith("RC-")
    assert payment.ledger_entry.reference == payment.receipt_number
    # No pipeline lead for a technician-free install.
    assert not Installation.objects.filter(service_account=account).exists()
    # The welcome SMS: name, account, plan, login, how to pay.
    (welcome,) = Message.objects.filter(customer=customer, template_key="welcome")
    assert welcome.channel == "sms" and welcome.to == "254712345678"
    for part in ("Wanjiru Kamau", customer.account, "Home Prepaid 10M", account.username, "247247"):
        assert part in welcome.body
    assert AuditEntry.objects.filter(
        model="subscribers.customer", object_id=str(customer.pk), action="create"
    ).exists()


def test_postpaid_activate_now_posts_the_first_prorated_invoice(alpha, postpaid):
    client = staff(alpha, Role.OWNER)
    response = client.post(URL, form(postpaid, payment_amount="", payment_method=""))
    assert response.status_code == 302
    customer = Customer.objects.get(name="Wanjiru Kamau")
    account = customer.service_accounts.get()
    assert account.status == "active" and account.expires_at is None
    (invoice,) = Invoice.objects.filter(customer=customer)
    # Prorated from today to the period's end: above nothing, at most a month's price.
    assert D("0") < invoice.total <= D("6000.00") * D("1.16")
    assert not Payment.objects.filter(customer=customer).exists()
    assert Message.objects.filter(customer=customer, template_key="welcome").count() == 1


def test_without_activate_now_it_is_a_lead_in_the_pipeline(alpha, prepaid):
    client = staff(alpha, Role.SUPPORT)
    response = client.post(
        URL,
        form(prepaid, activate_now=None, payment_amount="", payment_method="", username="wk.home"),
    )
    customer = Customer.objects.get(name="Wanjiru Kamau")
    installation = Installation.objects.get(service_account__customer=customer)
    assert response.status_code == 302
    assert response.url == f"/pipeline/{installation.pk}/"
    assert installation.stage == "lead"
    account = installation.service_account
    assert (account.status, account.username) == ("lead", "wk.home") and account.password
    assert not Payment.objects.exists() and not Invoice.objects.exists()


def test_activation_queues_the_router_job_named_on_the_form(alpha, prepaid):
    router = Router.objects.create(name="Core 1", host="10.0.0.1", username="api")
    client = staff(alpha, Role.OWNER)
    assert client.post(URL, form(prepaid, router=router.pk)).status_code == 302
    account = ServiceAccount.objects.get(customer__name="Wanjiru Kamau")
    assert account.router_id == router.pk
    assert list(
        RouterJob.objects.filter(service_account=account).values_list("action", flat=True)
    ) == ["provision"]


def test_mpesa_first_payment_keeps_its_receipt_and_gets_no_cash_number(alpha, prepaid):
    client = staff(alpha, Role.OWNER)
    data = form(prepaid, payment_method="mpesa", payment_reference="qka1b2c3d4")
    assert client.post(URL, data).status_code == 302
    payment = Payment.objects.get(customer__name="Wanjiru Kamau")
    assert (payment.reference, payment.receipt_number) == ("QKA1B2C3D4", "")


# --- bad input: a form error, nothing written -------------------------------------------


@pytest.mark.parametrize(
    ("change", "field", "says"),
    [
        ({"plan": ""}, "plan", "required"),
        ({"payment_amount": "", "payment_method": ""}, "payment_amount", "first payment"),
        ({"payment_amount": "-100"}, "payment_amount", "greater than or equal to 0.01"),
        ({"payment_amount": "0"}, "payment_amount", "greater than or equal to 0.01"),
        ({"payment_amount": "1000"}, "payment_amount", "does not buy a term"),
        ({"payment_method": ""}, "payment_method", "how the customer paid"),
        ({"payment_method": "bank"}, "payment_reference", "needs its reference"),
        ({"activate_now": None}, "payment_amount", "taken with Activate now"),
        ({"phone": "12345"}, "phone", ""),
    ],
)
def test_bad_input_is_a_form_error_and_writes_nothing(alpha, prepaid, change, field, says):
    client = staff(alpha, Role.OWNER)
    before = written()
    response = client.post(URL, form(prepaid, **change))
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert field in errors, errors
    assert says in " ".join(errors[field])
    assert written() == before


def test_a_phone_or_username_already_in_use_is_refused(alpha, prepaid, make_customer):
    make_customer(name="Existing", phone="0712345678", username="taken.login")
    client = staff(alpha, Role.OWNER)
    before = written()
    same_phone = client.post(URL, form(prepaid, phone="+254 712 345 678"))
    assert same_phone.status_code == 400
    assert "already the phone of customer" in str(same_phone.context["form"].errors["phone"])
    same_login = client.post(URL, form(prepaid, phone="0799000111", username="taken.login"))
    assert same_login.status_code == 400
    assert "already in use" in str(same_login.context["form"].errors["username"])
    assert written() == before


def test_the_service_refuses_prepaid_activation_without_payment_and_writes_nothing(alpha, prepaid):
    before = written()
    with pytest.raises(services.SignUpError) as refused:
        services.sign_up(
            services.SignUp(name="No Pay", phone="0711000222", plan=prepaid, activate_now=True),
            actor=alpha.owner,
        )
    assert refused.value.field == "payment_amount"
    assert written() == before


def test_a_failure_after_writing_rolls_everything_back(alpha, prepaid):
    """An M-Pesa receipt already recorded is found only when the payment is written,
    after the customer and the activation: all of it goes."""
    Payment.objects.create(method="mpesa", reference="QDUP000001", amount="10.00")
    before = written()
    with pytest.raises(services.SignUpError) as refused:
        services.sign_up(
            services.SignUp(
                name="Dup Receipt",
                phone="0711000333",
                plan=prepaid,
                activate_now=True,
                payment_amount=D("2500"),
                payment_method="mpesa",
                payment_reference="QDUP000001",
            ),
            actor=alpha.owner,
        )
    assert refused.value.field == "payment_reference"
    assert written() == before


# --- who may, and branch limits -----------------------------------------------------------


@pytest.mark.parametrize("role", [Role.FINANCE, Role.TECHNICIAN, Role.AGENT])
def test_only_roles_that_create_customers_may_open_it(alpha, role):
    client = staff(alpha, role)
    assert client.get(URL).status_code == 403


@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN, Role.SUPPORT])
def test_the_form_opens_for_those_who_create_customers(alpha, role):
    page = staff(alpha, role).get(URL)
    assert page.status_code == 200
    assert b"Activate now" in page.content


def test_branch_limited_staff_cannot_pick_another_branchs_router(alpha, prepaid):
    mine, other = Branch.objects.order_by("id")[0], Branch.objects.create(name="Far", code="far")
    alpha.support.branches.set([mine])
    foreign = Router.objects.create(name="Far core", host="10.9.9.9", username="api", branch=other)
    client = staff(alpha, Role.SUPPORT)
    response = client.post(URL, form(prepaid, router=foreign.pk, branch=mine.pk))
    assert response.status_code == 400
    assert "router" in response.context["form"].errors
    assert not Customer.objects.filter(name="Wanjiru Kamau").exists()
    # And must give a branch of theirs (else they would lose sight of the customer).
    response = client.post(URL, form(prepaid))
    assert "branch" in response.context["form"].errors


def test_a_static_ip_plan_is_not_offered(alpha, prepaid):
    static = Plan.objects.create(
        name="Static 50M", price="9000", download_kbps=50_000, upload_kbps=50_000, service="static"
    )
    client = staff(alpha, Role.OWNER)
    assert static not in client.get(URL).context["form"].fields["plan"].queryset
    response = client.post(URL, form(static))
    assert response.status_code == 400 and "plan" in response.context["form"].errors
    assert not Customer.objects.filter(name="Wanjiru Kamau").exists()


@pytest.mark.committed
def test_two_clerks_signing_up_the_same_phone_at_once_make_one_customer(django_db_blocker):
    """No unique constraint can hold phones (a landlord's old records share one): the
    sign-up holds the phone by an advisory lock, so the second clerk is told."""
    import threading

    from django.db import connections
    from django_tenants.utils import tenant_context

    from ispops.tenancy.services import create_isp

    with django_db_blocker.unblock():
        isp, _ = create_isp(
            schema="conc_signup",
            name="Concurrency sign-up",
            domain="conc-signup.localhost",
            owner_email="o@conc-signup.test",
            owner_password="conc-pass-2026-s",
        )
        try:
            with tenant_context(isp):
                plan = Plan.objects.create(
                    name="Home", price="1000", download_kbps=5000, upload_kbps=5000
                )
            start, outcomes = threading.Barrier(2), []

            def clerk(n):
                try:
                    with tenant_context(isp):
                        details = services.SignUp(
                            name=f"Clerk {n}",
                            phone="0733123456",
                            plan=plan,
                            activate_now=True,
                            payment_amount=D("1000"),
                            payment_method="cash",
                        )
                        start.wait(timeout=30)
                        services.sign_up(details, actor="test")
                        outcomes.append("created")
                except services.SignUpError as exc:
                    outcomes.append(exc.field)
                except Exception as exc:  # reported by the assertion below
                    outcomes.append(repr(exc))
                finally:
                    connections.close_all()

            threads = [threading.Thread(target=clerk, args=(n,)) for n in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=120)
            assert sorted(outcomes) == ["created", "phone"]
            with tenant_context(isp):
                assert Customer.objects.filter(phone="254733123456").count() == 1
                assert Payment.objects.count() == 1
        finally:
            connection.set_schema_to_public()
            isp.delete(force_drop=True)
