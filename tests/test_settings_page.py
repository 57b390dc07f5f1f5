"""The one settings page (/settings/): a section per area, each saved on its own;
opening it (or any area's own settings page) writes no audit entry."""

import re
from pathlib import Path

import pytest
from django_tenants.utils import tenant_context

from billing.models import BillingSettings
from hotspot.models import HotspotSettings
from ispops.audit.models import AuditEntry
from ispops.messaging.models import SmsSettings
from ispops.staff.models import Role
from payments.models import MpesaSettings
from subscribers.models import SubscriberSettings
from tickets.models import TicketSettings

SECTION_IDS = [
    "company",
    "billing",
    "dunning",
    "mpesa",
    "messaging",
    "tickets",
    "accounts",
    "hotspot",
    "reports",
]
SETTINGS_URLS = [
    "/settings/",
    "/billing/settings/",
    "/payments/settings/",
    "/messages/settings/",
    "/tickets/settings/",
    "/settings/subscribers/",
]


def _audit_count(alpha) -> int:
    with tenant_context(alpha.isp):
        return AuditEntry.objects.count()


def _no_settings_rows(alpha):
    """As on a new ISP: no settings row yet, so the first read makes it."""
    with tenant_context(alpha.isp):
        for model in (BillingSettings, MpesaSettings, SmsSettings, TicketSettings):
            model.objects.all().delete()
        SubscriberSettings.objects.all().delete()


@pytest.mark.parametrize("url", SETTINGS_URLS)
def test_opening_a_settings_page_writes_no_audit_entry(alpha, url):
    _no_settings_rows(alpha)
    before = _audit_count(alpha)
    client = alpha.client(alpha.owner)
    assert client.get(url).status_code == 200
    assert client.get(url).status_code == 200
    assert _audit_count(alpha) == before


def test_the_page_has_every_section_each_its_own_form(alpha):
    page = alpha.client(alpha.owner).get("/settings/").content.decode()
    for key in SECTION_IDS:
        assert f'id="{key}"' in page
        assert f'name="section" value="{key}"' in page
    # One form per section, each posting back here to its own anchor.
    assert page.count('action="/settings/#') == len(SECTION_IDS)
    for title in ("Company and branding", "Billing", "Dunning", "M-Pesa", "SMS and email"):
        assert f">{title}</h2>" in page


@pytest.mark.parametrize(
    "role,status",
    [
        (Role.OWNER, 200),
        (Role.ADMIN, 200),
        (Role.FINANCE, 403),
        (Role.SUPPORT, 403),
        (Role.TECHNICIAN, 403),
        (Role.AGENT, 403),
    ],
)
def test_settings_page_roles(alpha, role, status):
    client = alpha.client(alpha.people[role])
    assert client.get("/settings/").status_code == status
    assert client.post("/settings/", {"section": "accounts"}).status_code in (status, 400)


def test_the_settings_menu_item_opens_the_settings_page(alpha):
    home = alpha.client(alpha.owner).get("/").content.decode()
    assert re.search(r'<a href="/settings/"[^>]*>Settings</a>', home)


def test_saving_account_numbers_changes_only_that_section(alpha):
    with tenant_context(alpha.isp):
        billing = BillingSettings.load()
        billing.legal_name = "Alpha Net Ltd"
        billing.save()
    client = alpha.client(alpha.owner)
    response = client.post(
        "/settings/",
        {
            "section": "accounts",
            "account_pattern": "AN{seq:4}",
            "next_account_seq": "77",
            "default_billing": "prepaid",
        },
    )
    assert response.status_code == 302
    assert response["Location"] == "/settings/#accounts"
    with tenant_context(alpha.isp):
        assert SubscriberSettings.load().account_pattern == "AN{seq:4}"
        assert BillingSettings.load().legal_name == "Alpha Net Ltd"
    page = client.get("/settings/").content.decode()
    assert "Account numbers saved." in page and "AN0077" in page


def test_company_and_billing_parts_of_one_row_are_saved_apart(alpha):
    client = alpha.client(alpha.owner)
    with tenant_context(alpha.isp):
        before = BillingSettings.load()
        vat, grace = before.vat_rate, before.grace_days
    response = client.post(
        "/settings/",
        {"section": "company", "legal_name": "Alpha Net Limited", "paybill": "400200"},
    )
    assert response.status_code == 302 and response["Location"] == "/settings/#company"
    with tenant_context(alpha.isp):
        after = BillingSettings.load()
        assert (after.legal_name, after.paybill) == ("Alpha Net Limited", "400200")
        assert (after.vat_rate, after.grace_days) == (vat, grace)
    response = client.post(
        "/settings/",
        {
            "section": "dunning",
            "reminder_days_before": "3, 1",
            "reminder_days_after": "1",
            "grace_days": "5",
            "hard_suspend_after_days": "20",
        },
    )
    assert response.status_code == 302 and response["Location"] == "/settings/#dunning"
    with tenant_context(alpha.isp):
        after = BillingSettings.load()
        assert after.grace_days == 5 and after.legal_name == "Alpha Net Limited"
        entry = AuditEntry.objects.for_object(after).filter(action="update").first()
        assert entry.actor == alpha.owner and set(entry.changes) <= {
            "reminder_days_before",
            "reminder_days_after",
            "grace_days",
            "hard_suspend_after_days",
        }


def test_a_refused_section_shows_its_errors_on_the_page(alpha):
    response = alpha.client(alpha.owner).post(
        "/settings/",
        {
            "section": "accounts",
            "account_pattern": "X{seq}!",
            "next_account_seq": "1",
            "default_billing": "prepaid",
        },
    )
    assert response.status_code == 400
    page = response.content.decode()
    accounts = page[page.index('id="accounts"') :]
    assert "bad account pattern" in accounts
    assert 'id="company"' in page  # the other sections are still there


def test_an_unknown_section_is_a_400_not_a_500(alpha):
    response = alpha.client(alpha.owner).post("/settings/", {"section": "nonsense"})
    assert response.status_code == 400
    assert "No such settings section" in response.content.decode()


def test_sms_section_says_when_no_provider_sends(alpha):
    with tenant_context(alpha.isp):
        SmsSettings.objects.update_or_create(pk=1, defaults={"backend": "console"})
    page = alpha.client(alpha.owner).get("/settings/").content.decode()
    messaging = page[page.index('id="messaging"') :]
    assert "No SMS provider" in messaging


def test_mpesa_addresses_are_url_boxes_as_wide_as_the_form(alpha):
    page = alpha.client(alpha.owner).get("/settings/").content.decode()
    assert re.search(r'<input type="url" name="public_url"', page)
    assert re.search(r'<input type="url" name="base_url"', page)
    css = (Path(__file__).parent.parent / "static/css/ispops.css").read_text()
    rule = re.search(r"input\[type=url\] \{([^}]*)\}", css)
    assert rule and "width: 100%" in rule.group(1)


def _hotspot_post(**changes):
    data = {
        "section": "hotspot",
        "code_length": "10",
        "stacking": "queue",
        "wrong_codes_before_lockout": "5",
        "lockout_minutes": "15",
        "trial_package": "",
        "trial_every_days": "7",
        "warn_at_percent": "80",
        "walled_garden_hosts": "Help.Example.com\n\n*.cdn.example.net",
    }
    data.update(changes)
    return data


def test_hotspot_section_saves_and_refuses_a_bad_host(alpha):
    client = alpha.client(alpha.owner)
    response = client.post("/settings/", _hotspot_post())
    assert response.status_code == 302 and response["Location"] == "/settings/#hotspot"
    with tenant_context(alpha.isp):
        cfg = HotspotSettings.load()
        assert (cfg.code_length, cfg.stacking) == (10, "queue")
        assert cfg.walled_garden_hosts == "help.example.com\n*.cdn.example.net"
        entry = AuditEntry.objects.for_object(cfg).filter(action="update").first()
        assert entry.actor == alpha.owner and "code_length" in entry.changes
    refused = client.post("/settings/", _hotspot_post(walled_garden_hosts="http://x y/"))
    assert refused.status_code == 400
    assert "Not a host name: http://x y/" in refused.content.decode()
    with tenant_context(alpha.isp):
        assert HotspotSettings.load().walled_garden_hosts == "help.example.com\n*.cdn.example.net"


@pytest.mark.parametrize(
    "url,key",
    [
        ("/billing/settings/", "company"),
        ("/payments/settings/", "mpesa"),
        ("/messages/settings/", "messaging"),
        ("/settings/subscribers/", "accounts"),
    ],
)
def test_each_areas_own_page_links_to_its_section(alpha, url, key):
    page = alpha.client(alpha.owner).get(url).content.decode()
    assert f'href="/settings/#{key}"' in page


def test_sms_settings_page_warns_when_no_provider_sends(alpha):
    with tenant_context(alpha.isp):
        SmsSettings.objects.update_or_create(pk=1, defaults={"backend": "console"})
    page = alpha.client(alpha.owner).get("/messages/settings/").content.decode()
    assert "No SMS provider" in page


def test_settings_page_reads_a_bounded_number_of_queries(alpha, django_assert_max_num_queries):
    client = alpha.client(alpha.owner)
    client.get("/settings/")  # the first request after login renews the session; rows made
    # Session and user, each section's settings row (billing's once a part), the SLA
    # targets, the supervisor and trial package choices, the report rules and whether the
    # owner is limited to branches: the same however much is stored.
    with django_assert_max_num_queries(16):
        assert client.get("/settings/").status_code == 200


def test_mpesa_buttons_on_the_settings_page_come_back_to_it(alpha):
    client = alpha.client(alpha.owner)
    page = client.get("/settings/").content.decode()
    mpesa = page[page.index('id="mpesa"') :]
    assert 'action="/payments/settings/register-urls/"' in mpesa
    assert 'action="/payments/settings/new-token/"' in mpesa
    # Refused (box not ticked) and done alike return to the section they came from.
    refused = client.post("/payments/settings/new-token/", {"back": "settings"})
    assert refused["Location"] == "/settings/#mpesa"
    with tenant_context(alpha.isp):
        token = MpesaSettings.load().callback_token
    done = client.post("/payments/settings/new-token/", {"back": "settings", "confirm": "yes"})
    assert done["Location"] == "/settings/#mpesa"
    with tenant_context(alpha.isp):
        assert MpesaSettings.load().callback_token != token
    # Without `back`, the M-Pesa page as before; any other value is not followed.
    assert client.post("/payments/settings/new-token/")["Location"] == "/payments/settings/"
    elsewhere = client.post("/payments/settings/new-token/", {"back": "https://evil.example/"})
    assert elsewhere["Location"] == "/payments/settings/"


def test_the_report_rules_are_a_section_for_owners_of_the_whole_isp(alpha):
    from reports.models import ReportSettings

    client = alpha.client(alpha.owner)
    page = client.get("/settings/")
    assert page.status_code == 200 and 'id="reports"' in page.content.decode()
    saved = client.post("/settings/", {"section": "reports", "churn_after_days": "45",
                                       "reactivation_days": "60"})  # fmt: skip
    assert saved.status_code == 302 and saved["Location"] == "/settings/#reports"
    with tenant_context(alpha.isp):
        rules = ReportSettings.load()
        assert (rules.churn_after_days, rules.reactivation_days) == (45, 60)
    refused = client.post("/settings/", {"section": "reports", "churn_after_days": "0",
                                         "reactivation_days": "60"})  # fmt: skip
    assert refused.status_code == 400
