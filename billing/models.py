"""Billing: the customer ledger (the only source of a balance), invoices and credit notes
with their lines, each service account's timeline (what it was, on which plan, from which
day) and the waivers that voids leave on it, plan price history, charged periods (each
opened once), prepaid terms bought, billing runs, the ISP's billing and dunning settings,
dunning holds and the dunning log."""

from decimal import Decimal

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from ispops.lib.settingsrow import SettingsRow


def default_reminders_before():
    return [3, 1]


def default_reminders_after():
    return [1, 3]


def logo_path(instance, filename: str) -> str:
    """Each ISP's logo in a folder of its own schema's name."""
    from django.db import connection

    return f"logos/{connection.schema_name}/{filename}"


class BillingSettings(SettingsRow):
    """One row per ISP (pk=1): how it bills, taxes, numbers invoices and chases debt."""

    class Anchor(models.TextChoices):
        ANNIVERSARY = "anniversary", "Each account's activation day"
        FIXED_DAY = "fixed_day", "A fixed day of the month"

    class Suspended(models.TextChoices):
        CHARGE = "charge", "Keep charging"
        PAUSE = "pause", "Pause charges"

    class Partial(models.TextChoices):
        CREDIT = "credit", "Hold as credit until the full price is paid"
        PRORATE = "prorate", "Extend the expiry in proportion"

    class Upgrade(models.TextChoices):
        PRORATE = "prorate", "Charge the difference for the rest of the paid period"
        RENEWAL = "renewal", "Refuse until the paid period ends"

    class PlanMove(models.TextChoices):
        """When a plan change a subscriber asks for in the portal takes effect."""

        AT_ONCE = "at_once", "At once: the difference is charged or credited now"
        AT_RENEWAL = "renewal", "At renewal: from the end of the paid period"

    # Identity on invoices and receipts.
    legal_name = models.CharField(max_length=150, blank=True)
    address = models.TextField(blank=True)
    kra_pin = models.CharField("KRA PIN", max_length=20, blank=True)
    paybill = models.CharField("M-Pesa paybill or till", max_length=20, blank=True)
    phone = models.CharField(max_length=20, blank=True)
    email = models.EmailField(blank=True)
    logo = models.FileField(upload_to=logo_path, blank=True)
    # Billing.
    anchor = models.CharField(max_length=12, choices=Anchor.choices, default=Anchor.ANNIVERSARY)
    fixed_day = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(28)]
    )
    vat_rate = models.DecimalField(max_digits=5, decimal_places=2, default=Decimal("16.00"))
    vat_inclusive = models.BooleanField(default=True, help_text="Prices include VAT.")
    due_days = models.PositiveSmallIntegerField(default=7, help_text="Days from issue to due.")
    when_suspended = models.CharField(
        max_length=8, choices=Suspended.choices, default=Suspended.PAUSE
    )
    prepaid_partial = models.CharField(
        max_length=8, choices=Partial.choices, default=Partial.CREDIT
    )
    # A prepaid upgrade made in the middle of a paid term, by anyone (staff included).
    prepaid_upgrade = models.CharField(
        max_length=8, choices=Upgrade.choices, default=Upgrade.PRORATE
    )
    # Plan changes subscribers make themselves in the portal (subscribers.plan_changes):
    # "at renewal" schedules the change for the end of the paid period instead of
    # refusing it. Staff still change plans at once (within prepaid_upgrade).
    portal_upgrade = models.CharField(
        max_length=8, choices=PlanMove.choices, default=PlanMove.AT_ONCE
    )
    portal_downgrade = models.CharField(
        max_length=8, choices=PlanMove.choices, default=PlanMove.AT_RENEWAL
    )
    announce_invoices = models.CharField(
        max_length=5,
        choices=[
            ("sms", "By SMS"),
            ("email", "By email"),
            ("both", "By SMS and email"),
            ("none", "Not at all"),
        ],
        default="sms",
        help_text="How the billing run tells each customer of a new invoice (with a "
        "link to its PDF that expires).",
    )
    invoice_prefix = models.CharField(max_length=10, default="INV")
    # Gapless: taken under a row lock in the transaction that creates the invoice.
    next_invoice_number = models.PositiveIntegerField(default=1)
    credit_note_prefix = models.CharField(max_length=10, default="CN")
    next_credit_note_number = models.PositiveIntegerField(default=1)
    # Dunning.
    reminder_days_before = ArrayField(
        models.PositiveSmallIntegerField(), default=default_reminders_before, blank=True
    )
    reminder_days_after = ArrayField(
        models.PositiveSmallIntegerField(), default=default_reminders_after, blank=True
    )
    grace_days = models.PositiveSmallIntegerField(default=3)
    grace_hours = models.PositiveSmallIntegerField(
        default=1,
        help_text="Grace after an hourly or daily prepaid plan expires, in hours.",
    )
    hard_suspend_after_days = models.PositiveSmallIntegerField(
        default=14,
        help_text="Days after the soft suspension (walled garden) before the "
        "login is disabled altogether.",
    )

    class Meta:
        verbose_name_plural = "billing settings"

    def __str__(self):
        return "Billing settings"


class InvoiceQuerySet(models.QuerySet):
    def invoices(self):
        return self.filter(kind=Invoice.Kind.INVOICE)

    def unpaid(self):
        """Invoices with something still to pay (credit notes are never open)."""
        return self.filter(kind=Invoice.Kind.INVOICE, status=Invoice.Status.OPEN)


class Invoice(models.Model):
    """An invoice (a charge) or a credit note (kind CREDIT_NOTE: negative lines and
    totals, linked by `credits` to the invoice it credits). What a customer still owes on
    an invoice is its total less what payments and credit notes settled of it."""

    class Kind(models.TextChoices):
        INVOICE = "invoice", "Invoice"
        CREDIT_NOTE = "credit_note", "Credit note"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        PAID = "paid", "Paid"
        VOID = "void", "Void"

    number = models.CharField(max_length=30, unique=True)
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.INVOICE)
    credits = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="credit_notes",
        help_text="The invoice this credit note credits.",
    )
    customer = models.ForeignKey(
        "subscribers.Customer", on_delete=models.PROTECT, related_name="invoices"
    )
    service_account = models.ForeignKey(
        "subscribers.ServiceAccount",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="invoices",
    )
    period_start = models.DateField(null=True, blank=True)
    period_end = models.DateField(null=True, blank=True, help_text="Last day covered.")
    issued_on = models.DateField()
    due_on = models.DateField()
    status = models.CharField(max_length=6, choices=Status.choices, default=Status.OPEN)
    subtotal = models.DecimalField(max_digits=12, decimal_places=2)
    vat = models.DecimalField(max_digits=12, decimal_places=2)
    total = models.DecimalField(max_digits=12, decimal_places=2)
    # What payments (amount_paid) and credit notes (amount_credited) settled of it.
    amount_paid = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    amount_credited = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    reason = models.CharField(max_length=255, blank=True)
    vat_rate = models.DecimalField(max_digits=5, decimal_places=2)
    vat_inclusive = models.BooleanField()
    billing_run = models.ForeignKey(
        "BillingRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="invoices"
    )
    created_at = models.DateTimeField(default=timezone.now)
    voided_at = models.DateTimeField(null=True, blank=True)
    void_reason = models.CharField(max_length=255, blank=True)
    # When the customer was told of it (billing.announce), for invoices of a billing
    # run; claimed once, so an invoice is announced once however often the job runs.
    announced_at = models.DateTimeField(null=True, blank=True)

    objects = InvoiceQuerySet.as_manager()

    class Meta:
        ordering = ["-issued_on", "-id"]
        indexes = [
            # Allocation takes a customer's oldest open invoices; aged debt scans open ones.
            models.Index(fields=["customer", "status", "due_on"], name="invoice_customer_open"),
            models.Index(fields=["status", "due_on"], name="invoice_status_due"),
            # The run's invoices still to announce (few at a time; none most of the day).
            models.Index(
                fields=["id"],
                name="invoice_to_announce",
                condition=Q(announced_at__isnull=True, billing_run__isnull=False),
            ),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(amount_paid__gte=0), name="invoice_paid_not_neg"),
            models.CheckConstraint(
                condition=Q(amount_credited__gte=0), name="invoice_credited_not_neg"
            ),
            # Settled never beyond the total: what would go past it is customer credit.
            models.CheckConstraint(
                condition=Q(kind="credit_note")
                | Q(total__gte=models.F("amount_paid") + models.F("amount_credited")),
                name="invoice_settled_within_total",
            ),
            models.CheckConstraint(
                condition=Q(kind="invoice") | Q(credits__isnull=False, total__lte=0),
                name="credit_note_credits_an_invoice",
            ),
        ]

    def __str__(self):
        return self.number

    @property
    def is_credit_note(self) -> bool:
        return self.kind == self.Kind.CREDIT_NOTE

    @property
    def outstanding(self) -> Decimal:
        if self.kind == self.Kind.CREDIT_NOTE:
            return Decimal("0.00")
        return self.total - self.amount_paid - self.amount_credited


class InvoiceLine(models.Model):
    class Kind(models.TextChoices):
        PLAN = "plan", "Plan"
        ADDON = "addon", "Add-on"
        DISCOUNT = "discount", "Discount"
        PRORATION = "proration", "Proration"
        CREDIT = "credit", "Credit for unused days"
        OTHER = "other", "Other"

    # What a line is for, so the engine can compare what a period should cost with what
    # was charged for it, line by line: "plan:<id>", "addon:<id>", "discount:<id>",
    # "prepaid:<term id>"; blank for lines outside the engine (one-off charges).

    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    description = models.CharField(max_length=255)
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    service_account = models.ForeignKey(
        "subscribers.ServiceAccount",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    period_start = models.DateField(null=True, blank=True)
    period_end = models.DateField(null=True, blank=True)
    key = models.CharField(max_length=40, blank=True)
    # The start of the billing period this line belongs to (the engine's period id); the
    # line's own period_start/period_end are the days it covers.
    billing_period = models.DateField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            # The engine reads an account's lines for the periods it recomputes.
            models.Index(
                fields=["service_account", "billing_period"],
                name="line_account_period",
                condition=Q(billing_period__isnull=False),
            ),
        ]

    def __str__(self):
        return self.description


class ChargedPeriod(models.Model):
    """A service account's billing period that has been opened (charged, or found to cost
    nothing). The unique constraint is what makes re-runs and concurrent runs bill each
    period once; events recompute opened periods and post the difference."""

    service_account = models.ForeignKey(
        "subscribers.ServiceAccount", on_delete=models.PROTECT, related_name="charged_periods"
    )
    period_start = models.DateField()
    period_end = models.DateField()
    invoice = models.ForeignKey(
        Invoice, null=True, blank=True, on_delete=models.PROTECT, related_name="periods"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["service_account", "period_start"]
        constraints = [
            models.UniqueConstraint(
                fields=["service_account", "period_start"], name="charged_period_once"
            ),
        ]

    def __str__(self):
        return f"{self.service_account_id} {self.period_start}..{self.period_end}"


class TimelineEntry(models.Model):
    """From `starts_on` on (until the account's next entry), the service account is in
    `status` on `plan` at that plan's prices, billed `mode`, in periods of `cycle`;
    `billable` says whether those days are charged (active; suspended under a "keep
    charging" policy). Appended on every status or plan change, never edited: the
    engine (billing.timeline) reads what a period should cost from these rows. Several
    entries on one day: the last one is the day's state."""

    service_account = models.ForeignKey(
        "subscribers.ServiceAccount", on_delete=models.CASCADE, related_name="timeline"
    )
    starts_on = models.DateField()
    at = models.DateTimeField()
    status = models.CharField(max_length=12)
    plan = models.ForeignKey("subscribers.Plan", on_delete=models.PROTECT, related_name="+")
    mode = models.CharField(max_length=8)
    cycle = models.CharField(max_length=8)
    billable = models.BooleanField()
    reason = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["service_account", "starts_on", "id"]
        indexes = [models.Index(fields=["service_account", "starts_on"], name="timeline_account")]

    def __str__(self):
        return f"{self.service_account_id} {self.starts_on} {self.status} {self.plan_id}"


class Waiver(models.Model):
    """Days [starts_on, ends_on) of a service account that cost nothing whatever the
    timeline says: what voiding an invoice leaves behind, so no run bills them again."""

    service_account = models.ForeignKey(
        "subscribers.ServiceAccount", on_delete=models.CASCADE, related_name="waivers"
    )
    starts_on = models.DateField()
    ends_on = models.DateField()
    invoice = models.ForeignKey("Invoice", on_delete=models.PROTECT, related_name="waivers")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["service_account", "starts_on"]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_on__gt=models.F("starts_on")), name="waiver_not_empty"
            ),
        ]

    def __str__(self):
        return f"{self.service_account_id} {self.starts_on}..{self.ends_on}"


class PlanPrice(models.Model):
    """A plan's list price from `effective_on` on. A period is priced at the price in
    force on its first day (or on the day a plan change began within it), so a new price
    reaches each account at its next period and never rewrites one already charged."""

    plan = models.ForeignKey("subscribers.Plan", on_delete=models.CASCADE, related_name="prices")
    price = models.DecimalField(max_digits=12, decimal_places=2)
    effective_on = models.DateField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["plan", "effective_on"]
        constraints = [
            models.UniqueConstraint(fields=["plan", "effective_on"], name="plan_price_once_a_day"),
        ]

    def __str__(self):
        return f"{self.plan_id} {self.price} from {self.effective_on}"


class PrepaidTerm(models.Model):
    """A prepaid period bought: [starts_at, ends_at) of `plan` at `price`, on its own
    invoice, paid by `bought_by` (the payment whose money bought it, when one did).
    `anchor_day` keeps monthly renewals on the day the chain began (31 Jan -> 28 Feb ->
    31 Mar). A cancelled term (its payment reversed, its invoice voided) gave its time
    back."""

    service_account = models.ForeignKey(
        "subscribers.ServiceAccount", on_delete=models.CASCADE, related_name="prepaid_terms"
    )
    plan = models.ForeignKey("subscribers.Plan", on_delete=models.PROTECT, related_name="+")
    price = models.DecimalField(max_digits=12, decimal_places=2)
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    anchor_day = models.PositiveSmallIntegerField()
    invoice = models.ForeignKey(
        Invoice, null=True, blank=True, on_delete=models.PROTECT, related_name="prepaid_terms"
    )
    bought_by = models.ForeignKey(
        "LedgerEntry", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    cancelled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["service_account", "starts_at", "id"]

    def __str__(self):
        return f"{self.service_account_id} {self.starts_at}..{self.ends_at}"


class LedgerEntry(models.Model):
    """One movement of a customer's money. Positive amounts raise what the customer owes
    (charges, refunds paid out, debit adjustments); negative ones lower it (payments,
    credit notes, credit adjustments). Rows are never changed or deleted — a database
    trigger refuses it — and a correction is a new entry."""

    class Kind(models.TextChoices):
        CHARGE = "charge", "Charge"
        PAYMENT = "payment", "Payment"
        CREDIT_NOTE = "credit_note", "Credit note"
        ADJUSTMENT = "adjustment", "Adjustment"
        REFUND = "refund", "Refund"

    customer = models.ForeignKey(
        "subscribers.Customer", on_delete=models.PROTECT, related_name="ledger"
    )
    kind = models.CharField(max_length=12, choices=Kind.choices)
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    description = models.CharField(max_length=255)
    invoice = models.ForeignKey(
        Invoice, null=True, blank=True, on_delete=models.PROTECT, related_name="entries"
    )
    service_account = models.ForeignKey(
        "subscribers.ServiceAccount",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    # A payment's receipt number, a credit note's number: shown on statements.
    reference = models.CharField(max_length=40, blank=True)
    at = models.DateTimeField(default=timezone.now)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=200)

    class Meta:
        ordering = ["at", "id"]
        indexes = [
            models.Index(fields=["customer", "at"], name="ledger_customer_at"),
            # A period's payments or credit notes (collections) are read by kind and time.
            models.Index(fields=["kind", "at"], name="ledger_kind_at"),
        ]
        constraints = [
            # A receipt or credit note number is used once per customer: the same M-Pesa
            # receipt or bank slip entered twice is refused by the database.
            models.UniqueConstraint(
                fields=["customer", "kind", "reference"],
                condition=~Q(reference=""),
                name="ledger_reference_once",
            ),
            models.CheckConstraint(
                name="ledger_sign_by_kind",
                condition=(
                    (Q(kind__in=["charge", "refund"]) & Q(amount__gt=0))
                    | (Q(kind__in=["payment", "credit_note"]) & Q(amount__lt=0))
                    | (Q(kind="adjustment") & ~Q(amount=0))
                ),
            ),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} {self.amount} ({self.customer_id})"


class BillingRun(models.Model):
    class State(models.TextChoices):
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    run_date = models.DateField()
    state = models.CharField(max_length=8, choices=State.choices, default=State.RUNNING)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    total_accounts = models.PositiveIntegerField(default=0)
    processed = models.PositiveIntegerField(default=0)
    invoice_count = models.PositiveIntegerField(default=0)
    amount = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    skipped = models.PositiveIntegerField(default=0, help_text="Already charged.")
    errors = models.JSONField(default=list)
    started_by = models.CharField(max_length=200)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self):
        return f"Billing run {self.run_date}"

    @property
    def percent(self) -> int:
        return min(100, self.processed * 100 // self.total_accounts) if self.total_accounts else 100


class DunningHold(models.Model):
    """No suspension for this customer: a VIP exemption (no end) or a promise to pay
    until a date that staff recorded."""

    class Kind(models.TextChoices):
        EXEMPT = "exempt", "Exempt (VIP)"
        PROMISE = "promise", "Promise to pay"

    customer = models.ForeignKey(
        "subscribers.Customer", on_delete=models.CASCADE, related_name="dunning_holds"
    )
    kind = models.CharField(max_length=8, choices=Kind.choices)
    until = models.DateField(null=True, blank=True)
    note = models.CharField(max_length=255, blank=True)
    created_by = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind="exempt") | Q(until__isnull=False), name="promise_has_a_date"
            ),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} for {self.customer_id}"


class DunningAction(models.Model):
    """What dunning did, once per (subject, step): a reminder sent, a suspension made.
    The unique constraint makes a re-run of the same day do nothing twice."""

    class Step(models.TextChoices):
        REMINDER = "reminder", "Reminder"
        SOFT_SUSPEND = "soft", "Soft suspension (walled garden)"
        HARD_SUSPEND = "hard", "Hard suspension"

    customer = models.ForeignKey(
        "subscribers.Customer", on_delete=models.CASCADE, related_name="dunning_actions"
    )
    service_account = models.ForeignKey(
        "subscribers.ServiceAccount",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
    )
    invoice = models.ForeignKey(
        Invoice, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    step = models.CharField(max_length=8, choices=Step.choices)
    # e.g. "before:3", "after:1", "expiry:2026-11-30": what this action was for.
    key = models.CharField(max_length=60)
    on_date = models.DateField()
    detail = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["customer", "step", "key"], name="dunning_once"),
        ]

    def __str__(self):
        return f"{self.get_step_display()} {self.key}"
