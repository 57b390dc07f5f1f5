"""The M-Pesa settings page and the STK push page, against the Daraja simulator over real
HTTP: keys are stored but never shown, URLs registered with "Safaricom", prompts sent and
tracked until they end; who may do what."""

import pytest
from django_tenants.utils import tenant_context

from billing import services as billing
from ispops.staff.models import Branch
from payments import services
from payments.models import MpesaSettings, StkRequest
from payments.simulator import DarajaSimulator
from payments.simulator.server import SANDBOX_PASSKEY
from subscribers import services as subscribers
from subscribers.models import Customer

# Distinctive keys, so that finding them in a page means the page leaked them.
KEY, SECRET = "ck-Zq81xKv3", "cs-Wm27pLr9"
# A fixed callback token: a random one may contain a word Safaricom refuses in URLs.
TOKEN = "Tok3nForTheSettingsPageTests01"
PHONE = "254712345678"


@pytest.fixture
def sim():
    with DarajaSimulator(port=0, consumer_key=KEY, consumer_secret=SECRET) as simulator:
        yield simulator


@pytest.fixture
def configured(alpha, sim):
    """alpha's M-Pesa pointed at the simulator."""
    with tenant_context(alpha.isp):
        services.configure(
            actor="test",
            base_url=sim.base_url,
            shortcode="174379",
            kind="paybill",
            consumer_key=KEY,
            consumer_secret=SECRET,
            passkey=SANDBOX_PASSKEY,
            public_url="https://alpha.localhost",
            callback_token=TOKEN,
        )
    return sim


@pytest.fixture
def customer(alpha):
    with tenant_context(alpha.isp):
        return subscribers.create_customer(
            actor="test", name="Wanjiru Kamau", phone="0712 345 678", email="w@example.com"
        )


def _cfg(alpha) -> MpesaSettings:
    with tenant_context(alpha.isp):
        return MpesaSettings.load()


def _settings_post(sim, **changes) -> dict:
    data = {
        "base_url": sim.base_url,
        "shortcode": "174379",
        "kind": "paybill",
        "till_number": "",
        "consumer_key": KEY,
        "consumer_secret": SECRET,
        "passkey": SANDBOX_PASSKEY,
        "public_url": "https://alpha.localhost",
        "c2b_version": "v2",
        "reject_unknown_accounts": "on",
        "allowed_ips": "196.201.214.0/24\n196.201.213.114",
    }
    data.update(changes)
    return data


def _stk_posts(sim) -> list:
    return [r for r in sim.requests if r[1] == "/mpesa/stkpush/v1/processrequest"]


# --- who may open what -----------------------------------------------------------------


@pytest.mark.parametrize("url", ["/payments/settings/", "/payments/stk/", "/payments/reconcile/"])
def test_a_technician_is_refused_every_mpesa_page(alpha, url):
    assert alpha.client(alpha.technician).get(url).status_code == 403


def test_finance_and_support_may_not_open_the_settings_or_change_the_token(alpha):
    for user in (alpha.finance, alpha.support):
        client = alpha.client(user)
        assert client.get("/payments/settings/").status_code == 403
        assert client.post("/payments/settings/new-token/").status_code == 403
        assert client.post("/payments/settings/register-urls/").status_code == 403


def test_support_and_finance_may_send_prompts(alpha):
    for user in (alpha.support, alpha.finance, alpha.admin):
        assert alpha.client(user).get("/payments/stk/").status_code == 200


# --- settings --------------------------------------------------------------------------


def test_saving_the_settings_stores_the_keys_and_never_shows_them(alpha, sim):
    client = alpha.client(alpha.owner)
    response = client.post("/payments/settings/", _settings_post(sim))
    assert response.status_code == 302
    cfg = _cfg(alpha)
    assert (cfg.consumer_key, cfg.consumer_secret, cfg.passkey) == (KEY, SECRET, SANDBOX_PASSKEY)
    assert cfg.shortcode == "174379"
    assert cfg.allowed_ips == "196.201.214.0/24\n196.201.213.114/32"
    html = client.get("/payments/settings/").content.decode()
    for secret in (KEY, SECRET, SANDBOX_PASSKEY):
        assert secret not in html
    assert html.count(">stored<") == 3
    assert "not set" not in html


def test_a_blank_secret_keeps_the_stored_one(alpha, configured):
    client = alpha.client(alpha.admin)
    response = client.post(
        "/payments/settings/",
        _settings_post(
            configured, consumer_key="", consumer_secret="", passkey="", shortcode="600984"
        ),
    )
    assert response.status_code == 302
    cfg = _cfg(alpha)
    assert cfg.shortcode == "600984"
    assert (cfg.consumer_key, cfg.consumer_secret, cfg.passkey) == (KEY, SECRET, SANDBOX_PASSKEY)


def test_a_new_secret_replaces_the_old_one(alpha, configured):
    client = alpha.client(alpha.owner)
    client.post("/payments/settings/", _settings_post(configured, consumer_secret="cs-NEW-0042"))
    assert _cfg(alpha).consumer_secret == "cs-NEW-0042"


def test_bad_settings_are_refused_with_400_without_echoing_secrets_or_saving(alpha, configured):
    client = alpha.client(alpha.owner)
    response = client.post(
        "/payments/settings/",
        _settings_post(
            configured,
            shortcode="600984",
            allowed_ips="196.201.214.0/24\nnot-an-ip",
            consumer_secret="cs-typed-in-now",
        ),
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert "Not an IP address or network: not-an-ip" in html
    assert "cs-typed-in-now" not in html and SECRET not in html
    cfg = _cfg(alpha)
    assert cfg.shortcode == "174379" and cfg.consumer_secret == SECRET


def test_a_till_needs_its_till_number_and_a_public_url_may_not_say_mpesa(alpha, sim):
    client = alpha.client(alpha.owner)
    response = client.post(
        "/payments/settings/",
        _settings_post(sim, kind="till", public_url="https://mpesa.alpha.example"),
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert "A till needs its till number." in html
    assert "Safaricom refuses callback URLs containing" in html
    assert _cfg(alpha).shortcode == ""


def test_the_page_shows_the_three_callback_urls_with_the_token(alpha, configured):
    html = alpha.client(alpha.owner).get("/payments/settings/").content.decode()
    for path in ("c2b/confirmation", "c2b/validation", "stk/callback"):
        assert f"https://alpha.localhost/payments/{path}/{TOKEN}/" in html
    assert "<strong>never</strong>" in html


def test_register_urls_reaches_safaricom_with_the_callback_paths(alpha, configured):
    client = alpha.client(alpha.owner)
    response = client.post("/payments/settings/register-urls/", follow=True)
    assert response.status_code == 200
    assert "Safaricom accepted the C2B URLs" in response.content.decode()
    registered = configured.registered_urls["174379"]
    base = "https://alpha.localhost/payments/c2b"
    assert registered["ConfirmationURL"] == f"{base}/confirmation/{TOKEN}/"
    assert registered["ValidationURL"] == f"{base}/validation/{TOKEN}/"
    assert registered["version"] == "v2"
    cfg = _cfg(alpha)
    assert cfg.urls_registered_at is not None
    html = client.get("/payments/settings/").content.decode()
    assert "<strong>never</strong>" not in html


def test_a_refused_registration_is_an_error_message_not_a_500(alpha, configured):
    with tenant_context(alpha.isp):
        services.configure(actor="test", consumer_secret="cs-wrong")
    response = alpha.client(alpha.owner).post("/payments/settings/register-urls/", follow=True)
    assert response.status_code == 200
    html = response.content.decode()
    assert "The URLs were not registered" in html
    assert "Daraja refused the consumer key and secret" in html
    assert configured.registered_urls == {}
    assert _cfg(alpha).urls_registered_at is None


def test_register_without_a_public_url_says_so(alpha, configured):
    with tenant_context(alpha.isp):
        services.configure(actor="test", public_url="")
    response = alpha.client(alpha.owner).post("/payments/settings/register-urls/", follow=True)
    assert "set the public URL" in response.content.decode()
    assert configured.registered_urls == {}


def test_a_new_token_replaces_the_urls_and_says_to_register_again(alpha, configured):
    client = alpha.client(alpha.owner)
    response = client.post("/payments/settings/new-token/", {"confirm": "yes"}, follow=True)
    html = response.content.decode()
    assert "register the new URLs with Safaricom" in html
    token = _cfg(alpha).callback_token
    assert token != TOKEN
    assert f"/payments/stk/callback/{token}/" in html
    assert f"/{TOKEN}/" not in html


def test_a_new_token_needs_the_confirmation_ticked(alpha, configured):
    response = alpha.client(alpha.owner).post("/payments/settings/new-token/", follow=True)
    assert "The token was not changed" in response.content.decode()
    assert _cfg(alpha).callback_token == TOKEN


def test_settings_actions_take_only_post(alpha):
    client = alpha.client(alpha.owner)
    assert client.get("/payments/settings/new-token/").status_code == 405
    assert client.get("/payments/settings/register-urls/").status_code == 405


# --- STK push --------------------------------------------------------------------------


def test_the_customer_link_prefills_account_phone_and_what_they_owe(alpha, customer):
    with tenant_context(alpha.isp):
        billing.record_entry(customer, "adjustment", "1499.50", actor="test", description="Owed")
    html = alpha.client(alpha.support).get(f"/payments/stk/?customer={customer.pk}").content
    html = html.decode()
    assert f'value="{customer.account}"' in html
    assert f'value="{PHONE}"' in html
    assert 'value="1500"' in html  # whole shillings, rounded up to cover the bill


def test_a_customer_in_credit_gets_no_amount_prefilled(alpha, customer):
    with tenant_context(alpha.isp):
        billing.record_entry(customer, "adjustment", "-300", actor="test", description="Credit")
    html = alpha.client(alpha.finance).get(f"/payments/stk/?customer={customer.pk}").content
    assert b'name="amount"' in html
    assert b'name="amount" value' not in html


def test_an_unknown_customer_link_is_404(alpha):
    client = alpha.client(alpha.finance)
    assert client.get("/payments/stk/?customer=99999999").status_code == 404
    assert client.get("/payments/stk/?customer=abc").status_code == 404


def test_sending_a_prompt_reaches_the_simulator_and_is_tracked(alpha, configured, customer):
    configured.stk_outcome(PHONE, "lost")  # no callback: the request stays pending
    client = alpha.client(alpha.finance)
    response = client.post(
        "/payments/stk/",
        {"account": customer.account.lower(), "phone": "0712345678", "amount": "750"},
    )
    assert response.status_code == 302
    pushes = _stk_posts(configured)
    assert len(pushes) == 1
    body = pushes[0][2]
    assert body["AccountReference"] == customer.account
    assert body["Amount"] == 750 and body["PhoneNumber"] == PHONE
    assert body["CallBackURL"] == f"https://alpha.localhost/payments/stk/callback/{TOKEN}/"
    with tenant_context(alpha.isp):
        stk = StkRequest.objects.get(customer=customer)
    assert stk.state == StkRequest.State.PENDING
    assert stk.checkout_request_id in configured.transactions
    assert stk.source == StkRequest.Source.STAFF
    assert stk.started_by == alpha.finance.email

    page = client.get("/payments/stk/").content.decode()
    assert f'hx-get="/payments/stk/{stk.pk}/status/"' in page
    assert 'hx-trigger="every 3s"' in page
    assert "Payment prompt for KES 750 sent to 254712345678" in page


def test_the_status_row_polls_while_pending_and_stops_when_paid(alpha, configured, customer):
    configured.stk_outcome(PHONE, "lost")
    client = alpha.client(alpha.support)
    client.post("/payments/stk/", {"account": customer.account, "phone": PHONE, "amount": "100"})
    with tenant_context(alpha.isp):
        stk = StkRequest.objects.get(customer=customer)
    url = f"/payments/stk/{stk.pk}/status/"
    pending = client.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert pending.startswith(f'<tr id="stk-{stk.pk}" hx-get="{url}" hx-trigger="every 3s"')
    with tenant_context(alpha.isp):
        StkRequest.objects.filter(pk=stk.pk).update(state="paid", receipt="TC71ABCDEF")
    paid = client.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert "hx-trigger" not in paid and "hx-get" not in paid
    assert "TC71ABCDEF" in paid and "Paid" in paid


def test_a_failed_prompt_shows_the_reason_in_plain_words(alpha, configured, customer):
    with tenant_context(alpha.isp):
        stk = StkRequest.objects.create(
            customer=customer,
            phone=PHONE,
            amount=100,
            account_reference=customer.account,
            state="failed",
            result_code="1032",
            result_desc="Request cancelled by user",
        )
    html = alpha.client(alpha.owner).get(f"/payments/stk/{stk.pk}/status/").content.decode()
    assert "You cancelled the payment on your phone." in html
    assert "hx-get" not in html


def test_a_wrong_consumer_secret_shows_the_error_on_the_form(alpha, configured, customer):
    with tenant_context(alpha.isp):
        services.configure(actor="test", consumer_secret="cs-wrong")
    response = alpha.client(alpha.finance).post(
        "/payments/stk/", {"account": customer.account, "phone": PHONE, "amount": "500"}
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert "The prompt was not sent" in html
    assert "Daraja refused the consumer key and secret" in html
    assert _stk_posts(configured) == []
    with tenant_context(alpha.isp):
        stk = StkRequest.objects.get(customer=customer)
    assert stk.state == StkRequest.State.ERROR


def test_an_unknown_account_is_a_form_error_and_sends_nothing(alpha, configured):
    response = alpha.client(alpha.finance).post(
        "/payments/stk/", {"account": "NOBODY-1", "phone": PHONE, "amount": "500"}
    )
    assert response.status_code == 400
    assert "No customer has the account number NOBODY-1." in response.content.decode()
    assert _stk_posts(configured) == []


def test_a_bad_phone_or_amount_is_refused_with_400(alpha, configured, customer):
    client = alpha.client(alpha.finance)
    bad_phone = client.post(
        "/payments/stk/", {"account": customer.account, "phone": "12345", "amount": "500"}
    )
    assert bad_phone.status_code == 400
    assert "phone number: &#x27;12345&#x27;" in bad_phone.content.decode()
    too_much = client.post(
        "/payments/stk/", {"account": customer.account, "phone": PHONE, "amount": "250001"}
    )
    assert too_much.status_code == 400
    assert _stk_posts(configured) == []


def test_without_mpesa_set_up_the_form_says_so(alpha, customer):
    response = alpha.client(alpha.owner).post(
        "/payments/stk/", {"account": customer.account, "phone": PHONE, "amount": "500"}
    )
    assert response.status_code == 400
    assert "M-Pesa is not set up for this ISP yet" in response.content.decode()


def test_the_list_of_prompts_paginates(alpha, customer):
    with tenant_context(alpha.isp):
        StkRequest.objects.bulk_create(
            StkRequest(
                customer=customer,
                phone=PHONE,
                amount=10,
                account_reference=customer.account,
                public_id=f"p{i}",
                state="failed",
            )
            for i in range(30)
        )
    html = alpha.client(alpha.owner).get("/payments/stk/").content.decode()
    assert html.count('<tr id="stk-') == 25
    assert "Page 1 of 2" in html
    second = alpha.client(alpha.owner).get("/payments/stk/?page=2").content.decode()
    assert second.count('<tr id="stk-') == 5


def test_staff_of_one_branch_cannot_prompt_or_see_another_branchs_customer(
    alpha, configured, customer
):
    with tenant_context(alpha.isp):
        mine, other = (
            Branch.objects.create(name="Mine", code="mine"),
            Branch.objects.create(name="Other", code="other"),
        )
        alpha.support.branches.add(mine)
        Customer.objects.filter(pk=customer.pk).update(branch=other)
        StkRequest.objects.create(
            customer=customer, phone=PHONE, amount=10, account_reference=customer.account
        )
    client = alpha.client(alpha.support)
    assert client.get(f"/payments/stk/?customer={customer.pk}").status_code == 404
    response = client.post(
        "/payments/stk/", {"account": customer.account, "phone": PHONE, "amount": "10"}
    )
    assert response.status_code == 400
    assert f"No customer has the account number {customer.account}." in response.content.decode()
    assert '<tr id="stk-' not in response.content.decode()
    assert _stk_posts(configured) == []


def test_the_prompt_list_costs_the_same_queries_for_many_rows(
    alpha, customer, django_assert_max_num_queries
):
    with tenant_context(alpha.isp):
        StkRequest.objects.bulk_create(
            StkRequest(
                customer=customer,
                phone=PHONE,
                amount=10,
                account_reference=customer.account,
                public_id=f"q{i}",
            )
            for i in range(25)
        )
    client = alpha.client(alpha.owner)
    with django_assert_max_num_queries(12):
        assert client.get("/payments/stk/").status_code == 200
