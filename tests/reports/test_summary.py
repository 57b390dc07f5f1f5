"""The monthly summary: last month's figures in a PDF, emailed once per month to each
active owner; a second run sends nothing more."""

from datetime import date, datetime
from decimal import Decimal

import pytest
import time_machine
from django.conf import settings
from django.core import mail
from django.utils import timezone
from django_tenants.utils import tenant_context

from ispops.celery import app
from ispops.messaging.models import Message
from ispops.staff.models import Role, User
from reports import summary, tasks, tasks_summary  # tasks: what the worker loads
from reports.models import SnapshotDay

FIRST_OF_APRIL = datetime(2026, 4, 1, 7, tzinfo=timezone.get_current_timezone())


def snapshots():
    SnapshotDay.objects.create(day=date(2026, 2, 28), services=2, mrr=Decimal("10000"))
    SnapshotDay.objects.create(day=date(2026, 3, 31), services=3, mrr=Decimal("12500"))


def test_the_summary_holds_last_months_figures_and_renders_as_a_pdf(alpha):
    with tenant_context(alpha.isp), time_machine.travel(FIRST_OF_APRIL, tick=False):
        snapshots()
        html = summary.summary_html(alpha.owner, date(2026, 4, 1))
        pdf = summary.summary_pdf(alpha.owner, date(2026, 4, 1))
    assert "March 2026" in html
    assert "KES 12,500.00" in html and "+KES 2,500.00" in html
    assert "Collection rate this month" in html and "Billed in the month" in html
    assert "http" not in html.split("<body>")[1]  # nothing to fetch from outside
    assert pdf.startswith(b"%PDF")


def test_each_active_owner_gets_it_once_a_month(alpha):
    with tenant_context(alpha.isp), time_machine.travel(FIRST_OF_APRIL, tick=False):
        snapshots()
        second = User.objects.create_user(
            "partner@alpha.test", "pw-12345678", role=Role.OWNER, full_name="Partner"
        )
        User.objects.create_user("gone@alpha.test", "pw-12345678", role=Role.OWNER, is_active=False)
        mail.outbox.clear()
        sent = tasks_summary.send_summaries(date(2026, 4, 1), now=timezone.now())
        again = tasks_summary.send_summaries(date(2026, 4, 1), now=timezone.now())
        logged = Message.objects.filter(related__startswith="summary:")
        claims = set(logged.values_list("related", "to"))
    assert (sent, again) == (2, 0)
    assert sorted(m.to[0] for m in mail.outbox) == sorted([alpha.owner.email, second.email])
    message = mail.outbox[0]
    assert message.subject == "Monthly summary for March 2026"
    name, content, mimetype = message.attachments[0]
    assert name == "summary-2026-03.pdf" and mimetype == "application/pdf"
    assert content.startswith(b"%PDF")
    # Each recorded in the message log under its month and owner.
    assert claims == {
        (f"summary:2026-03:{alpha.owner.pk}", alpha.owner.email),
        (f"summary:2026-03:{second.pk}", second.email),
    }


def test_a_failed_email_leaves_the_month_to_the_next_run(alpha, monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("mail server down")

    with tenant_context(alpha.isp), time_machine.travel(FIRST_OF_APRIL, tick=False):
        monkeypatch.setattr("django.core.mail.EmailMessage.send", refuse)
        with pytest.raises(OSError):
            tasks_summary.send_summaries(date(2026, 4, 1), now=timezone.now())
        assert not Message.objects.filter(related__startswith="summary:").exists()
        monkeypatch.undo()
        mail.outbox.clear()
        assert tasks_summary.send_summaries(date(2026, 4, 1), now=timezone.now()) == 1
    assert len(mail.outbox) == 1


def test_beat_sends_it_on_the_first_of_the_month_at_seven_through_the_worker():
    entry = settings.CELERY_BEAT_SCHEDULE["monthly-summary"]
    assert entry["task"] == "ispops.tasks.fan_out"
    assert entry["args"] == [tasks_summary.send_monthly_summary.name]
    assert entry["schedule"].day_of_month == {1} and entry["schedule"].hour == {7}
    assert tasks.tasks_summary.send_monthly_summary.name in app.tasks
