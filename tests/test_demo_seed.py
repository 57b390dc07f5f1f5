"""The demo ISP that seed_demo makes (the session's, with 40 subscribers, tests/conftest.py)
tells a coherent story: months of history through billing's services, nothing dated
after now, the reports' snapshots taken so the MRR report is not empty on first start,
every lead on the pipeline, and a second run changes nothing."""

import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models import Max, Min
from django.test import Client
from django.utils import timezone
from django_tenants.utils import tenant_context

from billing.models import Invoice, LedgerEntry, PrepaidTerm
from ispops.staff.models import User
from ispops.tenancy.models import Isp
from network.models import RouterSample
from payments.models import Payment
from reports.models import SnapshotDay
from subscribers.models import Customer, Installation, ServiceAccount, StatusChange
from tickets.models import Ticket

OWNER = "owner@demo.ispops.local"


@pytest.fixture
def demo(db):
    isp = Isp.objects.get(schema_name="demo")
    yield isp
    connection.set_schema_to_public()


def counts() -> dict:
    models = (
        Customer,
        ServiceAccount,
        StatusChange,
        Installation,
        Invoice,
        LedgerEntry,
        PrepaidTerm,
        Payment,
        SnapshotDay,
        RouterSample,
        Ticket,
    )
    return {model.__name__: model.objects.count() for model in models}


def test_seed_demo_twice_leaves_the_same_data(demo):
    with tenant_context(demo):
        before = counts()
    out = io.StringIO()
    call_command("seed_demo", "--subscribers", "40", stdout=out)
    with tenant_context(demo):
        assert counts() == before
    # Its time is printed; the logins only when asked for.
    assert " s)" in out.getvalue()
    assert OWNER not in out.getvalue()


def test_seed_demo_prints_the_logins_when_asked(demo):
    out = io.StringIO()
    call_command("seed_demo", "--subscribers", "40", "--logins", stdout=out)
    assert out.getvalue().count(OWNER) == 1


def test_a_bad_subscriber_count_is_refused_and_changes_nothing(demo):
    with tenant_context(demo):
        before = counts()
    with pytest.raises(CommandError, match="--subscribers"):
        call_command("seed_demo", "--subscribers", "0", stdout=io.StringIO())
    with tenant_context(demo):
        assert counts() == before


def test_nothing_in_the_demo_is_dated_after_now(demo):
    now = timezone.now()
    with tenant_context(demo):
        assert Payment.objects.count() > 40
        latest = Payment.objects.aggregate(
            paid=Max("paid_at"), received=Max("received_at"), credited=Max("credited_at")
        )
        assert all(moment <= now for moment in latest.values()), latest
        assert LedgerEntry.objects.aggregate(m=Max("at"))["m"] <= now
        assert Invoice.objects.aggregate(m=Max("issued_on"))["m"] <= timezone.localdate(now)
        assert Invoice.objects.aggregate(m=Max("created_at"))["m"] <= now
        assert StatusChange.objects.aggregate(m=Max("at"))["m"] <= now
        # ... and it has months behind it: invoices and payments in at least 4 months.
        first = Payment.objects.aggregate(m=Min("paid_at"))["m"]
        assert first < now - timedelta(days=120)
        months = {d.strftime("%Y-%m") for d in Invoice.objects.values_list("issued_on", flat=True)}
        assert len(months) >= 4, months
        # History is not announced again: beat would send months of invoice SMS.
        assert not Invoice.objects.filter(announced_at__isnull=True).exists()


def test_the_demo_has_report_history_and_the_mrr_report_shows_it(demo):
    with tenant_context(demo):
        yesterday = timezone.localdate() - timedelta(days=1)
        assert SnapshotDay.objects.count() >= 90
        # Taken after the fact, as the nightly run marks the days it missed (yesterday's,
        # taken the morning after, is what the nightly run itself would have taken).
        assert SnapshotDay.objects.exclude(estimated=True).exclude(day=yesterday).count() == 0
        assert SnapshotDay.objects.get(day=yesterday).mrr > 0
        assert RouterSample.objects.filter(at__gte=timezone.now() - timedelta(hours=24)).exists()
        client = Client(HTTP_HOST=demo.primary_host)
        client.force_login(User.objects.get(email=OWNER))
    page = client.get("/reports/mrr/")
    assert page.status_code == 200
    found = [row["movement"] for row in page.context["rows"]]
    # The last months' closing MRR is there, and grew: the demo ISP gained customers.
    assert found[-1].end > 0
    assert sum(1 for m in found if m.end > 0) >= 4
    assert found[-1].end > found[-5].end
    assert sum(m.figure("new") for m in found) > 0


def test_every_demo_lead_is_on_the_pipeline(demo):
    with tenant_context(demo):
        leads = ServiceAccount.objects.filter(status="lead")
        assert leads.exists()
        assert not leads.filter(installation__isnull=True).exists()
        stages = set(Installation.objects.values_list("stage", flat=True))
        assert {"lead", "survey", "quoted", "scheduled", "equipped", "installed"} <= stages
