"""/reports/settings/: the ISP's churn and reactivation rules (ReportSettings), for
owners and admins of the whole ISP. Saving them is audited and queues the MRR movement
of the last 12 months and weeks to be worked out again under the new rules (kept
figures are keyed by the rules, so nothing stale is ever shown; the queue only spares
the next reader the wait)."""

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.shortcuts import redirect, render
from django.urls import path

from ispops import audit
from ispops.staff.access import MANAGERS, roles
from reports.access import branch_ids
from reports.models import ReportSettings
from reports.tasks import work_out_movement


class ReportSettingsForm(forms.ModelForm):
    class Meta:
        model = ReportSettings
        fields = ["churn_after_days", "reactivation_days"]


def sets_rules(user) -> bool:
    """Owners and admins of the whole ISP set its report rules."""
    return user.role in MANAGERS and branch_ids(user) is None


def save_rules(form: ReportSettingsForm, user) -> None:
    """Save valid rules, audited, and queue the movement to be worked out again."""
    with transaction.atomic(), audit.acting_as(user):
        form.save()
        transaction.on_commit(work_out_movement.delay)


@roles(*MANAGERS)
def report_settings(request):
    if not sets_rules(request.user):
        raise PermissionDenied("The report rules are the whole ISP's: an owner or admin of "
                               "every branch sets them.")  # fmt: skip
    form = ReportSettingsForm(request.POST or None, instance=ReportSettings.load())
    if request.method == "POST":
        if form.is_valid():
            save_rules(form, request.user)
            messages.success(request, "Report rules saved; the MRR movement is worked out again.")
            return redirect("reports:settings")
        return render(request, "reports/settings.html", {"form": form}, status=400)
    return render(request, "reports/settings.html", {"form": form})


urls = [path("reports/settings/", report_settings, name="settings")]
