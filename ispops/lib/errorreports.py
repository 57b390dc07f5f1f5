"""What Django's error page (DEBUG on) and error e-mails may show. Django hides
settings and request variables whose NAME says API, TOKEN, KEY, SECRET, PASS or
SIGNATURE; a connection URL carries its password in the value under a name that says
none of these (DATABASE_URL, REDIS_URL, a Sentry DSN), and the development server
copies the whole environment into request.META."""

import re

from django.views.debug import SafeExceptionReporterFilter

# The password in scheme://user:password@host, wherever such a URL appears.
URL_PASSWORD = re.compile(r"(\w[\w+.-]*://[^/\s:@]*:)[^/\s@]+(@)")


def hide_url_passwords(text: str) -> str:
    return URL_PASSWORD.sub(r"\1********\2", text)


class HideConnectionStrings(SafeExceptionReporterFilter):
    """Django's filter, also hiding anything named like a URL, DSN or database
    (DATABASES too: its PASSWORD is hidden already, but not its host and user), and
    the password of any connection URL in a value or a traceback's variables."""

    hidden_settings = re.compile(
        "API|AUTH|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|URL|DSN|DATABASE",
        flags=re.IGNORECASE,
    )

    def cleanse_setting(self, key, value):
        cleansed = super().cleanse_setting(key, value)
        return hide_url_passwords(cleansed) if isinstance(cleansed, str) else cleansed

    def cleanse_special_types(self, request, value):
        cleansed = super().cleanse_special_types(request, value)
        return hide_url_passwords(cleansed) if isinstance(cleansed, str) else cleansed
