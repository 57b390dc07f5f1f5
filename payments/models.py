"""What the payments app owns: an ISP's Daraja settings, every raw callback Safaricom
sent (stored before anything else happens), STK push requests tracked until they end,
and payments, one per M-Pesa receipt whichever path reported it."""

import secrets
from decimal import Decimal

from django.db import models
from django.db.models import Q
from django.db.models.functions import Upper
from django.utils import timezone

from ispops.lib.crypto import EncryptedTextField
from ispops.lib.settingsrow import SettingsRow

SANDBOX_URL = "https://sandbox.safaricom.co.ke"


# Safaricom refuses callback URLs containing these words (any case); a random token
# could spell one.
BANNED_IN_URLS = ("mpesa", "m-pesa", "safaricom", "exe", "cmd", "sql", "query")


def new_callback_token() -> str:
    while True:
        token = secrets.token_urlsafe(24)
        if not any(word in token.lower() for word in BANNED_IN_URLS):
            return token


def new_public_id() -> str:
    return secrets.token_urlsafe(16)


class MpesaSettings(SettingsRow):
    """One row per ISP (pk=1)."""

    class Kind(models.TextChoices):
        PAYBILL = "paybill", "Paybill"
        TILL = "till", "Till (Buy Goods)"

    base_url = models.URLField(
        default=SANDBOX_URL,
        help_text="Daraja environment: https://sandbox.safaricom.co.ke or "
        "https://api.safaricom.co.ke",
    )
    shortcode = models.CharField(
        max_length=10,
        blank=True,
        help_text="The paybill number, or for a till the store (head office) number.",
    )
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.PAYBILL)
    till_number = models.CharField(
        max_length=10, blank=True, help_text="Till only: the till number customers pay."
    )
    consumer_key = EncryptedTextField(blank=True)
    consumer_secret = EncryptedTextField(blank=True)
    passkey = EncryptedTextField(blank=True)
    public_url = models.URLField(
        blank=True,
        help_text="This ISP's own https address that Safaricom calls back, e.g. "
        "https://billing.example.co.ke",
    )
    # The secret in the callback URLs (Safaricom signs nothing): encrypted like the keys.
    callback_token = EncryptedTextField(default=new_callback_token)
    c2b_version = models.CharField(max_length=2, choices=[("v1", "v1"), ("v2", "v2")], default="v2")
    reject_unknown_accounts = models.BooleanField(
        default=True,
        help_text="At C2B validation, refuse a payment whose account number is not a "
        "customer's (the payer gets Safaricom's 'invalid account' message). Needs "
        "External Validation switched on by Safaricom.",
    )
    allowed_ips = models.TextField(
        blank=True,
        help_text="Optional: callbacks only from these addresses or networks, one per "
        "line (e.g. 196.201.214.0/24). Empty: from anywhere.",
    )
    urls_registered_at = models.DateTimeField(null=True, blank=True)
    urls_registered_reply = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "M-Pesa settings"

    def __str__(self) -> str:
        return "M-Pesa settings"

    @property
    def configured(self) -> bool:
        return bool(
            self.base_url
            and self.shortcode
            and self.consumer_key
            and self.consumer_secret
            and self.passkey
        )

    @property
    def party_b(self) -> str:
        """Who receives an STK payment: the paybill itself, or the till number."""
        return (
            self.till_number
            if self.kind == self.Kind.TILL and self.till_number
            else (self.shortcode)
        )


class CallbackQuerySet(models.QuerySet):
    def money_not_taken(self):
        """Confirmations and STK callbacks that made no payment and failed, or wait
        for the sweep after failing: money M-Pesa may have moved that staff must find
        (the unmatched page lists them). An STK callback for a push we never sent is
        left out: it fails the same way whether or not the payer paid, and a paid one
        makes a payment."""
        failed = Q(state=Callback.State.FAILED)
        waiting = Q(state=Callback.State.RECEIVED) & ~Q(error="")
        return (
            self.filter(
                kind__in=[Callback.Kind.CONFIRMATION, Callback.Kind.STK], payment__isnull=True
            )
            .filter(failed | waiting)
            .exclude(kind=Callback.Kind.STK, error__startswith="unknown CheckoutRequestID")
        )


class Callback(models.Model):
    """A request Safaricom (or someone claiming to be) sent, exactly as it came, saved
    before it is parsed so that nothing is lost if a later step fails. A body that
    PostgreSQL cannot take as it came (bytes that are not UTF-8, a NUL) is stored with
    those bytes as backslash escapes (payments.services.storable_body)."""

    class Kind(models.TextChoices):
        VALIDATION = "validation", "C2B validation"
        CONFIRMATION = "confirmation", "C2B confirmation"
        STK = "stk", "STK callback"

    class State(models.TextChoices):
        RECEIVED = "received", "Received"
        PROCESSED = "processed", "Processed"
        REJECTED = "rejected", "Rejected"
        FAILED = "failed", "Failed"

    kind = models.CharField(max_length=12, choices=Kind.choices)
    received_at = models.DateTimeField(default=timezone.now)
    source_ip = models.GenericIPAddressField(null=True, blank=True)
    headers = models.JSONField(default=dict)
    body = models.TextField()
    state = models.CharField(max_length=10, choices=State.choices, default=State.RECEIVED)
    error = models.TextField(blank=True)
    payment = models.ForeignKey(
        "Payment", null=True, blank=True, on_delete=models.SET_NULL, related_name="callbacks"
    )

    objects = CallbackQuerySet.as_manager()

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [
            models.Index(
                fields=["received_at"],
                name="callback_unprocessed",
                condition=Q(state="received"),
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} at {self.received_at:%Y-%m-%d %H:%M:%S}"


class StkRequest(models.Model):
    """An STK push (payment prompt on the payer's phone), from the sending to the end."""

    class State(models.TextChoices):
        PENDING = "pending", "Waiting for the PIN"
        PAID = "paid", "Paid"
        FAILED = "failed", "Failed"
        ERROR = "error", "Not sent"

    class Source(models.TextChoices):
        STAFF = "staff", "Staff"
        PAY_PAGE = "pay_page", "Pay page"
        PORTAL = "portal", "Subscriber portal"
        COMMAND = "command", "Command line"
        HOTSPOT = "hotspot", "Hotspot page"

    # Whose account the money is for; none when the push has a purpose instead (a
    # hotspot package bought by a phone that is nobody's account, payments.purposes).
    customer = models.ForeignKey(
        "subscribers.Customer",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="stk_requests",
    )
    purpose = models.CharField(max_length=20, blank=True)
    phone = models.CharField(max_length=12)
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    account_reference = models.CharField(max_length=12)
    merchant_request_id = models.CharField(max_length=64, blank=True)
    checkout_request_id = models.CharField(max_length=64, null=True, blank=True, unique=True)
    state = models.CharField(max_length=8, choices=State.choices, default=State.PENDING)
    result_code = models.CharField(max_length=16, blank=True)
    result_desc = models.CharField(max_length=255, blank=True)
    receipt = models.CharField(max_length=20, blank=True)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.STAFF)
    started_by = models.CharField(max_length=200, blank=True)
    # An unguessable id for the public pay page to poll its status with.
    public_id = models.CharField(max_length=32, unique=True, default=new_public_id)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    queries = models.PositiveSmallIntegerField(default=0)
    next_query_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["next_query_at"], name="stk_pending", condition=Q(state="pending"))
        ]
        constraints = [
            # Crediting relies on it: a paid push goes to its customer or its purpose.
            models.CheckConstraint(
                condition=Q(customer__isnull=False) | ~Q(purpose=""),
                name="stk_for_customer_or_purpose",
            )
        ]

    def __str__(self) -> str:
        return f"STK {self.checkout_request_id or self.pk} ({self.get_state_display()})"

    @property
    def failure_reason(self) -> str:
        """The failure in plain words for the payer."""
        return plain_failure(self.result_code, self.result_desc)


FAILURES = {
    "1": "Your M-Pesa balance is not enough for this payment.",
    "1032": "You cancelled the payment on your phone.",
    "1037": "Your phone could not be reached. Check it is on and has signal, then try again.",
    "1019": "The payment request expired before the PIN was entered.",
    "2001": "The M-Pesa PIN was wrong.",
    "1001": "Another M-Pesa payment is in progress on this phone. Wait a minute and retry.",
    "17": "M-Pesa refused a repeat of the same payment so soon. Wait two minutes.",
}


def plain_failure(code: str, desc: str) -> str:
    return FAILURES.get(str(code), desc or "M-Pesa could not complete the payment.")


class Payment(models.Model):
    """Money received. An M-Pesa payment is keyed by its receipt number: one receipt is
    one payment, whether the STK callback or the C2B confirmation reported it."""

    class Method(models.TextChoices):
        MPESA = "mpesa", "M-Pesa"
        CASH = "cash", "Cash"
        BANK = "bank", "Bank transfer"
        CHEQUE = "cheque", "Cheque"

    class State(models.TextChoices):
        RECEIVED = "received", "Received"  # stored, not yet credited
        CREDITED = "credited", "Credited"
        UNMATCHED = "unmatched", "Unmatched"
        REVERSED = "reversed", "Reversed"

    method = models.CharField(max_length=8, choices=Method.choices)
    # The M-Pesa receipt (TransID / MpesaReceiptNumber), or the slip/cheque reference;
    # a cash payment taken with no slip has its receipt number here too.
    reference = models.CharField(max_length=40)
    # Our own receipt number (RC-000123) for cash staff took: numbered by ReceiptCounter.
    receipt_number = models.CharField(max_length=20, blank=True)
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    state = models.CharField(max_length=10, choices=State.choices, default=State.RECEIVED)
    customer = models.ForeignKey(
        "subscribers.Customer",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="payments",
    )
    # What the payer typed (BillRefNumber) and who they are, as M-Pesa reported it; the
    # MSISDN may be hashed or masked.
    account_reference = models.CharField(max_length=40, blank=True)
    msisdn = models.CharField(max_length=80, blank=True)
    payer_name = models.CharField(max_length=150, blank=True)
    paid_at = models.DateTimeField(default=timezone.now)
    received_at = models.DateTimeField(default=timezone.now)
    via_c2b = models.BooleanField(default=False)
    via_stk = models.BooleanField(default=False)
    stk_request = models.ForeignKey(
        StkRequest, null=True, blank=True, on_delete=models.SET_NULL, related_name="payments"
    )
    matched_by = models.CharField(max_length=20, blank=True)
    ledger_entry = models.ForeignKey(
        "billing.LedgerEntry", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    credited_at = models.DateTimeField(null=True, blank=True)
    recorded_by = models.CharField(max_length=200, blank=True)
    note = models.CharField(max_length=255, blank=True)
    reversed_at = models.DateTimeField(null=True, blank=True)
    reversed_by = models.CharField(max_length=200, blank=True)
    reversal_reason = models.CharField(max_length=255, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["reference"], condition=Q(method="mpesa"), name="one_payment_per_receipt"
            ),
            models.CheckConstraint(condition=Q(amount__gt=0), name="payment_amount_positive"),
            # A receipt number is handed out once (ReceiptCounter); this says so in the
            # database too.
            models.UniqueConstraint(
                fields=["receipt_number"],
                condition=~Q(receipt_number=""),
                name="one_payment_per_receipt_number",
            ),
        ]
        indexes = [
            models.Index(fields=["reference"], name="payment_reference"),
            # Finance looks a receipt up in any case (reference__iexact).
            models.Index(Upper("reference"), name="payment_reference_upper"),
            models.Index(fields=["state", "received_at"], name="payment_state"),
            models.Index(fields=["customer", "-received_at"], name="payment_customer"),
        ]

    def __str__(self) -> str:
        return f"{self.get_method_display()} {self.reference} KES {self.amount}"

    @property
    def is_mpesa(self) -> bool:
        return self.method == self.Method.MPESA

    @property
    def channels(self) -> str:
        return " + ".join(
            name for name, flag in (("STK", self.via_stk), ("C2B", self.via_c2b)) if flag
        )


class ReceiptCounter(models.Model):
    """The ISP's next cash receipt number: one row (pk 1) per ISP schema. The transaction
    that records a cash payment locks it FOR UPDATE, takes the number and moves it on,
    so two clerks at once get consecutive numbers, and a payment that rolls back gives
    its number back (no gaps)."""

    next_number = models.PositiveIntegerField(default=1)

    def __str__(self) -> str:
        return f"next receipt RC-{self.next_number:06d}"


class StatementUpload(models.Model):
    """An M-Pesa statement CSV that finance uploaded to reconcile against."""

    uploaded_at = models.DateTimeField(default=timezone.now)
    uploaded_by = models.CharField(max_length=200)
    filename = models.CharField(max_length=200)
    period_start = models.DateTimeField(null=True, blank=True)
    period_end = models.DateTimeField(null=True, blank=True)
    rows = models.JSONField(default=list)  # [{"receipt", "amount", "at", "details"}]
    total = models.DecimalField(max_digits=14, decimal_places=2, default=Decimal("0"))

    class Meta:
        ordering = ["-uploaded_at", "-id"]

    def __str__(self) -> str:
        return f"{self.filename} ({self.uploaded_at:%Y-%m-%d})"
