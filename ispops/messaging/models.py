"""Messaging: the ISP's SMS gateway settings, its edited message templates, the log
of every SMS and email sent to a customer (which is also the queue the workers send),
and the codes sent by SMS to prove a phone."""

from django.db import models
from django.db.models import Q
from django.utils import timezone

from ispops.lib.crypto import EncryptedTextField
from ispops.lib.settingsrow import SettingsRow

AFRICASTALKING_URL = "https://api.africastalking.com"
AFRICASTALKING_SANDBOX_URL = "https://api.sandbox.africastalking.com"


class Channel(models.TextChoices):
    SMS = "sms", "SMS"
    EMAIL = "email", "Email"


class SmsSettings(SettingsRow):
    """One row per ISP (pk=1): which SMS gateway it sends through, with its credentials."""

    class Backend(models.TextChoices):
        DEFAULT = "", "Platform default"
        CONSOLE = "console", "Console (written to the log, not sent)"
        AFRICASTALKING = "africastalking", "Africa's Talking"

    # Blank: whatever the platform runs with (settings.SMS_BACKEND).
    backend = models.CharField(max_length=16, choices=Backend.choices, blank=True)
    username = models.CharField(
        max_length=100, blank=True, help_text="The Africa's Talking app username."
    )
    api_key = EncryptedTextField("API key", blank=True)
    sender_id = models.CharField(
        "Sender ID",
        max_length=11,
        blank=True,
        help_text="Alphanumeric sender name approved by Africa's Talking; "
        "blank sends from their shared short code.",
    )
    base_url = models.URLField(
        "API address",
        default=AFRICASTALKING_URL,
        help_text=f"Live: {AFRICASTALKING_URL}; sandbox: {AFRICASTALKING_SANDBOX_URL}.",
    )

    class Meta:
        verbose_name_plural = "SMS settings"

    def __str__(self):
        return "SMS settings"


class MessageTemplate(models.Model):
    """An ISP's own wording for one message (key + channel). Keys without a row use the
    default text in ispops.messaging.defaults.DEFAULT_TEMPLATES."""

    key = models.SlugField(max_length=50)
    channel = models.CharField(max_length=5, choices=Channel.choices)
    subject = models.CharField(max_length=200, blank=True, help_text="Email only.")
    body = models.TextField()
    is_active = models.BooleanField(
        default=True, help_text="Untick to send the default text again without losing yours."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["key", "channel"]
        constraints = [
            # render() looks up one template per key and channel.
            models.UniqueConstraint(fields=["key", "channel"], name="messagetemplate_key_channel"),
        ]

    def __str__(self):
        return f"{self.key} ({self.get_channel_display()})"


class MessageQuerySet(models.QuerySet):
    def for_log(self):
        return self.select_related("customer")


class Message(models.Model):
    """One SMS or email to one address: written in the transaction that caused it,
    sent afterwards by a worker (services.deliver), retried until it goes or fails."""

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        # Not sent because the customer opted out of this kind of message on this
        # channel (ispops.messaging.preferences); `error` says which choice.
        SKIPPED = "skipped", "Skipped (opted out)"
        # Handed to a stand-in that only writes it to the server log (the console SMS
        # gateway, a console email backend): nobody received it. "Sent" is kept for a
        # provider that accepted the message.
        LOGGED = "logged", "Not sent: no provider"

    customer = models.ForeignKey(
        "subscribers.Customer",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="messages",
    )
    channel = models.CharField(max_length=5, choices=Channel.choices)
    # 2547XXXXXXXX for SMS, an address for email.
    to = models.CharField(max_length=254)
    subject = models.CharField(max_length=200, blank=True)
    body = models.TextField()
    template_key = models.CharField(max_length=50, blank=True)
    state = models.CharField(max_length=8, choices=State.choices, default=State.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    # When a worker claimed it; a message "sending" for long was lost with its worker.
    claimed_at = models.DateTimeField(null=True, blank=True)
    provider_id = models.CharField(max_length=100, blank=True)
    error = models.TextField(blank=True)
    # What it is about, e.g. "invoice:42", so a caller can find what it already sent.
    related = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    objects = MessageQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The sweep (services.sweep_messages) looks only at unfinished messages,
            # a small part of the table once it has grown.
            models.Index(
                fields=["state", "next_attempt_at"],
                name="message_unfinished",
                condition=Q(state__in=["queued", "sending"]),
            ),
            # The customer page's recent messages (services.recent_for).
            models.Index(fields=["customer", "-created_at"], name="message_customer"),
            # The log page, newest first, and its phone/address search.
            models.Index(fields=["-created_at", "-id"], name="message_log"),
            models.Index(fields=["to"], name="message_to"),
            models.Index(fields=["related"], name="message_related"),
        ]

    def __str__(self):
        return f"{self.get_channel_display()} to {self.to}"


class NotificationPreference(models.Model):
    """A customer's choice for one kind of message on one channel. No row: the kind's
    default (ispops.messaging.preferences.KINDS). Only kinds the law lets a customer
    refuse are stored; the send path never looks rows up for the others."""

    customer = models.ForeignKey(
        "subscribers.Customer", on_delete=models.CASCADE, related_name="notification_preferences"
    )
    kind = models.CharField(max_length=20)
    channel = models.CharField(max_length=5, choices=Channel.choices)
    allowed = models.BooleanField()
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            # One choice per customer, kind and channel: preferences.set_preferences
            # updates it in place, and the send path reads it into a dict.
            models.UniqueConstraint(
                fields=["customer", "kind", "channel"], name="notificationpreference_one"
            ),
        ]

    def __str__(self):
        return f"{self.kind} by {self.channel}: {'yes' if self.allowed else 'no'}"


class PhoneCode(models.Model):
    """A code sent by SMS to prove a phone (ispops.messaging.phone_codes): a subscriber
    signing in to the portal, or a captive-page visitor asking for the free trial or
    joining what their phone bought. Only an HMAC of the code is kept. A row is written
    also when nothing is sent (the phone has nothing to prove), so limits and answers
    are alike whether or not the number is known."""

    class Purpose(models.TextChoices):
        # A code of one purpose never proves the other: both the look-up and the hash
        # name the purpose.
        PORTAL = "portal", "Portal sign-in"
        HOTSPOT = "hotspot", "Wi-Fi page"

    phone = models.CharField(max_length=12)
    purpose = models.CharField(max_length=8, choices=Purpose.choices)
    code_hash = models.CharField(max_length=64)
    sent = models.BooleanField(default=False)  # False: written for the limits only
    ip = models.GenericIPAddressField(null=True, blank=True)
    mac = models.CharField(max_length=17, blank=True)  # the captive page's device
    tries = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The resend wait, the daily count per phone and the newest code of a phone.
            models.Index(fields=["purpose", "phone", "-created_at"], name="phonecode_phone"),
            # The daily count per address (the captive page's).
            models.Index(fields=["purpose", "ip", "created_at"], name="phonecode_ip"),
        ]

    def __str__(self):
        return f"{self.purpose} code for {self.phone} at {self.created_at:%Y-%m-%d %H:%M}"


class Campaign(models.Model):
    """One SMS or email to every customer of a saved filter of the subscribers list (or
    of customers picked on it), sent through the message queue like any notification
    (ispops.messaging.campaigns): each recipient is claimed once, so a retried task
    never sends anyone the message twice."""

    class State(models.TextChoices):
        DRAFT = "draft", "Draft"
        SENDING = "sending", "Sending"
        DONE = "done", "Sent to the queue"

    name = models.CharField(max_length=120)
    channel = models.CharField(max_length=5, choices=Channel.choices, default=Channel.SMS)
    # A kind of ispops.messaging.preferences: whose choices (opt-outs) apply.
    kind = models.CharField(max_length=20)
    subject = models.CharField(max_length=200, blank=True, help_text="Email only.")
    body = models.TextField()
    # The subscribers list's filter ({"status": "active", "plan": "3", ...}), or the
    # customers picked on it ({"ids": [4, 9]}); read with the creator's branches.
    filters = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=8, choices=State.choices, default=State.DRAFT)
    created_by = models.ForeignKey(
        "staff.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    recipient_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return self.name

    @property
    def related(self) -> str:
        """What its messages carry in Message.related (their count by state is the
        campaign's progress)."""
        return f"campaign:{self.pk}"


class CampaignRecipient(models.Model):
    """One customer a campaign goes to, written when it starts sending. A worker claims
    pending rows (locked, skipping those another worker holds) and writes each one's
    message in the same transaction, so a customer gets the campaign at most once."""

    class State(models.TextChoices):
        PENDING = "pending", "Waiting"
        QUEUED = "queued", "Message written"
        SKIPPED = "skipped", "Skipped"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="recipients")
    customer = models.ForeignKey("subscribers.Customer", on_delete=models.CASCADE, related_name="+")
    state = models.CharField(max_length=8, choices=State.choices, default=State.PENDING)
    message = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    note = models.CharField(max_length=255, blank=True)

    class Meta:
        constraints = [
            # A customer is on a campaign once: recipients are written with
            # ignore_conflicts, so a second start adds nobody twice.
            models.UniqueConstraint(fields=["campaign", "customer"], name="campaignrecipient_once"),
        ]
        indexes = [
            # The sender's "next pending recipients" and the page's counts.
            models.Index(fields=["campaign", "state"], name="campaignrecipient_state"),
        ]

    def __str__(self):
        return f"{self.campaign} to customer {self.customer_id}"
