"""The report-rules section of the one settings page (ispops.staff.settings_page): when
a customer counts as churned and as reactivated (ReportSettings). Saved like
/reports/settings/ (reports.views_settings.save_rules): audited, and the movement
worked out again under the new rules."""

from ispops.staff.settings_page import Section, add_section
from reports.models import ReportSettings
from reports.views_settings import ReportSettingsForm, save_rules, sets_rules


class ReportsSection(Section):
    key, title, template = "reports", "Report rules", "settings/_reports.html"

    def shown_to(self, user) -> bool:
        return sets_rules(user)

    def context(self, request, data=None, files=None):
        return {"form": ReportSettingsForm(data, instance=ReportSettings.load())}

    def save(self, request, context):
        form = context["form"]
        if not form.is_valid():
            return False
        save_rules(form, request.user)
        return True


def register() -> None:
    add_section(ReportsSection(), 90)
