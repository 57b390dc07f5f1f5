"""What the subscriber portal keeps: the ISP's sign-in rules, the sign-in attempts that
count against the limits, a subscriber's password, the portal's event log and the "I
already paid" claims. The one-time codes sent are ispops.messaging.models.PhoneCode.

A portal identity is a phone number (2547.../2541...): whoever proves they hold it may
see the customers whose phone or alternative phone it is. Nothing here is a staff user.
"""

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from ispops.lib.settingsrow import SettingsRow


class PortalSettings(SettingsRow):
    """One row per ISP (pk=1): how strict sign-in is."""

    resend_wait_seconds = models.PositiveSmallIntegerField(
        default=30,
        validators=[MinValueValidator(10), MaxValueValidator(600)],
        help_text="Seconds before another code may be sent to the same phone.",
    )
    tries_per_code = models.PositiveSmallIntegerField(
        default=5,
        validators=[MinValueValidator(1), MaxValueValidator(10)],
        help_text="Wrong entries before a code stops working.",
    )
    codes_per_phone_per_day = models.PositiveSmallIntegerField(
        default=5,
        validators=[MinValueValidator(1), MaxValueValidator(50)],
    )
    attempts_per_ip_per_day = models.PositiveSmallIntegerField(
        default=30,
        validators=[MinValueValidator(5), MaxValueValidator(10000)],
        help_text="Codes asked for and wrong passwords from one address in 24 hours.",
    )
    code_length = models.PositiveSmallIntegerField(
        default=6, validators=[MinValueValidator(4), MaxValueValidator(8)]
    )
    code_minutes = models.PositiveSmallIntegerField(
        "code lifetime (minutes)",
        default=10,
        validators=[MinValueValidator(1), MaxValueValidator(60)],
    )
    password_tries = models.PositiveSmallIntegerField(
        default=5,
        validators=[MinValueValidator(1), MaxValueValidator(20)],
        help_text="Wrong passwords for one phone before password sign-in pauses.",
    )
    password_lock_minutes = models.PositiveSmallIntegerField(
        default=15, validators=[MinValueValidator(1), MaxValueValidator(1440)]
    )
    claims_per_day = models.PositiveSmallIntegerField(
        "payment claims per day",
        default=5,
        validators=[MinValueValidator(1), MaxValueValidator(50)],
        help_text='M-Pesa codes one account may type into "I already paid" in 24 hours.',
    )
    claims_per_ip_per_day = models.PositiveSmallIntegerField(
        "payment claims per address per day",
        default=20,
        validators=[MinValueValidator(1), MaxValueValidator(1000)],
        help_text='M-Pesa codes typed into "I already paid" from one address in 24 hours, '
        "whatever the account: a cap on guessing codes from many accounts.",
    )

    class Meta:
        verbose_name_plural = "portal settings"

    def __str__(self):
        return "Portal settings"


class SignInAttempt(models.Model):
    """One event that counts against a limit: a code asked for (known phone or not) or a
    wrong password. The per-address cap counts these; wrong codes are bounded by the
    code's own tries instead."""

    class Kind(models.TextChoices):
        CODE_REQUESTED = "code", "Code asked for"
        WRONG_PASSWORD = "bad_pw", "Wrong password"

    kind = models.CharField(max_length=8, choices=Kind.choices)
    phone = models.CharField(max_length=12, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["ip", "at"], name="portal_attempt_ip"),
            models.Index(fields=["phone", "kind", "at"], name="portal_attempt_phone"),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} {self.phone} {self.ip}"


class PortalLogin(models.Model):
    """A phone that has signed in at least once, and the password its holder set."""

    phone = models.CharField(max_length=12, unique=True)
    # Django's password hash (make_password); empty until the subscriber sets one.
    password = models.CharField(max_length=128, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_signed_in_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return self.phone

    @property
    def has_password(self) -> bool:
        return bool(self.password)


class PortalEvent(models.Model):
    """What happened in the portal that someone may later ask about: sign-ins (by code or
    password), sign-outs, and staff opening a customer's portal view."""

    class Kind(models.TextChoices):
        SIGNED_IN_CODE = "in_code", "Signed in with a code"
        SIGNED_IN_PASSWORD = "in_pw", "Signed in with a password"
        SIGNED_OUT = "out", "Signed out"
        VIEWED_BY_STAFF = "view_as", "Opened by staff (view as customer)"
        PASSWORD_SET = "pw_set", "Password set"

    kind = models.CharField(max_length=8, choices=Kind.choices)
    phone = models.CharField(max_length=12, blank=True)
    customer = models.ForeignKey(
        "subscribers.Customer",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="portal_events",
    )
    staff = models.ForeignKey(
        "staff.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    ip = models.GenericIPAddressField(null=True, blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["customer", "-at"], name="portal_event_customer"),
            models.Index(fields=["phone", "-at"], name="portal_event_phone"),
        ]

    def __str__(self):
        who = self.phone or self.customer_id
        return f"{self.get_kind_display()} {who} {self.at:%Y-%m-%d %H:%M}"


class PaymentClaim(models.Model):
    """A subscriber's "I already paid": the M-Pesa code they typed and what came of it.
    Every attempt is a row (the rate limit counts them); a code that came to anything
    (matched, assigned, or a ticket for finance) is claimed once, across all customers."""

    class Outcome(models.TextChoices):
        MATCHED = "matched", "Already on this account"
        ASSIGNED = "assigned", "Unmatched payment assigned to this account"
        TICKET = "ticket", "Not found: ticket for finance"
        REFUSED = "refused", "Refused"

    customer = models.ForeignKey(
        "subscribers.Customer", on_delete=models.CASCADE, related_name="payment_claims"
    )
    code = models.CharField(max_length=20)  # upper case, as M-Pesa prints it
    amount = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    phone = models.CharField(max_length=12, blank=True)
    outcome = models.CharField(max_length=8, choices=Outcome.choices)
    detail = models.CharField(max_length=255, blank=True)
    payment = models.ForeignKey(
        "payments.Payment", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    ticket = models.ForeignKey(
        "tickets.Ticket", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    ip = models.GenericIPAddressField(null=True, blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["code"], condition=~models.Q(outcome="refused"), name="one_claim_per_code"
            )
        ]
        indexes = [
            # The per-account and per-address daily limits (portal.claims) count these.
            models.Index(fields=["customer", "at"], name="portal_claim_customer"),
            models.Index(fields=["ip", "at"], name="portal_claim_ip"),
        ]

    def __str__(self):
        return f"claim {self.code} ({self.get_outcome_display()})"
