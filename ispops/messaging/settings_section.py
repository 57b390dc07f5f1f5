"""The SMS and email section of the one settings page (ispops.staff.settings_page)."""

from django.conf import settings as django_settings

from ispops.messaging import backends
from ispops.messaging.forms import SmsSettingsForm
from ispops.messaging.models import SmsSettings
from ispops.staff.settings_page import FormSection, add_section


class MessagingSection(FormSection):
    key, title, template = "messaging", "SMS and email", "settings/_messaging.html"

    def context(self, request, data=None, files=None):
        current = SmsSettings.load()
        effective = current.backend or django_settings.SMS_BACKEND
        return {
            "form": SmsSettingsForm(data, instance=current),
            "settings": current,
            "key_set": bool(current.api_key),
            "sms_delivers": effective != SmsSettings.Backend.CONSOLE,
            "email_delivers": backends.email_delivers(),
        }


def register() -> None:
    add_section(MessagingSection(), 50)
