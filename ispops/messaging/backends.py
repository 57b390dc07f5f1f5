"""Ways out for messages: SMS gateways (the console for development, Africa's Talking
for real) and email through Django's configured EMAIL_BACKEND.

A backend's send() either returns the provider's message id or raises SmsError; it
never retries itself (services.deliver decides when to try again). A backend whose
`delivers` is False only writes the message to the log: the message is then recorded
as not sent (no provider), never as "Sent".
"""

import logging
import uuid
from email.utils import formataddr, parseaddr

import requests
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.mail import get_connection, send_mail

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 10
# Africa's Talking per-recipient status codes that mean "accepted": Processed, Sent, Queued.
AT_ACCEPTED = {100, 101, 102}
# Codes that will fail again however often they are retried: InvalidPhoneNumber,
# UnsupportedNumberType, UserInBlacklist, DoNotDisturbRejection.
AT_PERMANENT = {403, 404, 406, 409}


class SmsError(Exception):
    """The gateway did not take the message; str() says why. `permanent` errors are not
    worth retrying (a bad number stays bad)."""

    def __init__(self, message: str, *, permanent: bool = False):
        super().__init__(message)
        self.permanent = permanent


class ConsoleSmsBackend:
    """Development: the SMS goes to the log, not to a phone."""

    delivers = False

    def send(self, to: str, body: str) -> str:
        log.info("SMS to %s : %s", to, body)
        return f"console-{uuid.uuid4().hex[:16]}"


class AfricasTalkingSmsBackend:
    """Africa's Talking bulk SMS API (POST /version1/messaging)."""

    delivers = True

    def __init__(self, username: str, api_key: str, sender_id: str = "", base_url: str = ""):
        from ispops.messaging.models import AFRICASTALKING_URL

        self.username = username
        self.api_key = api_key
        self.sender_id = sender_id
        self.base_url = (base_url or AFRICASTALKING_URL).rstrip("/")

    def send(self, to: str, body: str) -> str:
        data = {"username": self.username, "to": f"+{to.lstrip('+')}", "message": body}
        if self.sender_id:
            data["from"] = self.sender_id
        try:
            response = requests.post(
                f"{self.base_url}/version1/messaging",
                data=data,
                headers={"apiKey": self.api_key, "Accept": "application/json"},
                timeout=TIMEOUT_SECONDS,
            )
        except requests.RequestException as exc:
            raise SmsError(f"Africa's Talking could not be reached: {exc}") from None
        if response.status_code >= 400:
            # 401 is a wrong username or key; the body is a short plain-text reason.
            raise SmsError(
                f"Africa's Talking answered HTTP {response.status_code}: {response.text[:200]}"
            )
        try:
            answer = response.json()["SMSMessageData"]
        except (ValueError, KeyError, TypeError):
            raise SmsError(
                f"unexpected answer from Africa's Talking: {response.text[:200]}"
            ) from None
        recipients = answer.get("Recipients") or []
        if not recipients:
            # e.g. {"Message": "InvalidSenderId", "Recipients": []}
            raise SmsError(str(answer.get("Message") or "no recipient accepted"))
        first = recipients[0]
        status = str(first.get("status", ""))
        try:
            code = int(first.get("statusCode"))
        except (TypeError, ValueError):
            code = None
        if status == "Success" or code in AT_ACCEPTED:
            return str(first.get("messageId", ""))
        raise SmsError(status or f"status code {code}", permanent=code in AT_PERMANENT)


def sms_backend(config=None):
    """The gateway this ISP sends through: its SmsSettings, else settings.SMS_BACKEND."""
    from ispops.messaging.models import SmsSettings

    if config is None:
        config = SmsSettings.objects.filter(pk=1).first()
    name = (config.backend if config else "") or settings.SMS_BACKEND
    if name == SmsSettings.Backend.CONSOLE:
        return ConsoleSmsBackend()
    if name == SmsSettings.Backend.AFRICASTALKING:
        if config is None or not config.username or not config.api_key:
            raise SmsError("Africa's Talking is not set up: enter the username and API key")
        return AfricasTalkingSmsBackend(
            config.username, config.api_key, config.sender_id, config.base_url
        )
    raise ImproperlyConfigured(
        f"ISPOPS_SMS_BACKEND must be 'console' or 'africastalking', not {name!r}"
    )


# Django email backends that reach nobody: the message is printed, dropped or written to
# a file on the server. (locmem, the tests' outbox, stands for a real server.)
NON_DELIVERING_EMAIL_BACKENDS = {
    "django.core.mail.backends.console.EmailBackend",
    "django.core.mail.backends.dummy.EmailBackend",
    "django.core.mail.backends.filebased.EmailBackend",
}


def email_delivers() -> bool:
    """Whether EMAIL_BACKEND hands mail to a server that can deliver it."""
    return settings.EMAIL_BACKEND not in NON_DELIVERING_EMAIL_BACKENDS


def send_email(to: str, subject: str, body: str, *, from_name: str = "") -> str:
    """Send through Django's EMAIL_BACKEND (console in development, SMTP in production),
    from DEFAULT_FROM_EMAIL's address under the ISP's name."""
    sender = settings.DEFAULT_FROM_EMAIL
    if from_name:
        sender = formataddr((from_name, parseaddr(sender)[1]))
    # SMTP waits forever by default; a hung server must not hold the worker.
    mailer = get_connection(timeout=getattr(settings, "EMAIL_TIMEOUT", None) or 30)
    send_mail(subject, body, sender, [to], fail_silently=False, connection=mailer)
    return ""
