"""The account-number section of the one settings page (ispops.staff.settings_page)."""

from ispops.staff.settings_page import FormSection, add_section
from subscribers import services
from subscribers.models import SubscriberSettings
from subscribers.views.settings import SettingsForm


class AccountsSection(FormSection):
    key, title, template = "accounts", "Account numbers", "settings/_accounts.html"

    def context(self, request, data=None, files=None):
        current = SubscriberSettings.load()
        sample = services.expand_account_pattern(current.account_pattern, current.next_account_seq)
        return {"form": SettingsForm(data, instance=current), "sample": sample}


def register() -> None:
    add_section(AccountsSection(), 70)
