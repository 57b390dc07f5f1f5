"""Subscribers: plans, customers and their service accounts, add-ons and discounts,
network sites, the lead-to-activation installation, and what was asked of other apps.

State lives here; every change goes through subscribers.services (the status machine,
activation, imports), which records who, when and why.
"""

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from ispops.lib.crypto import EncryptedTextField
from ispops.lib.settingsrow import SettingsRow


class Billing(models.TextChoices):
    PREPAID = "prepaid", "Prepaid"
    POSTPAID = "postpaid", "Postpaid"


class ServiceType(models.TextChoices):
    PPPOE = "pppoe", "PPPoE"
    HOTSPOT = "hotspot", "Hotspot"
    STATIC = "static", "Static IP"


class SubscriberSettings(SettingsRow):
    """One row per ISP (pk=1): how account numbers are made, the default billing mode."""

    # "{seq:5}" -> 00042; "DF{seq:5}" -> DF00042. Letters and digits only, as M-Pesa
    # account references are; at most 12 characters when expanded.
    account_pattern = models.CharField(max_length=30, default="{seq:5}")
    next_account_seq = models.PositiveIntegerField(default=1)
    default_billing = models.CharField(
        max_length=8, choices=Billing.choices, default=Billing.PREPAID
    )

    class Meta:
        verbose_name_plural = "subscriber settings"

    def __str__(self):
        return "Subscriber settings"


class Plan(models.Model):
    class Cycle(models.TextChoices):
        MONTHLY = "monthly", "Monthly"
        WEEKLY = "weekly", "Weekly"
        DAILY = "daily", "Daily"
        HOURLY = "hourly", "Hourly"

    name = models.CharField(max_length=80, unique=True)
    # Charges copy the price when they are made, so a new price applies from the next
    # charge on and never rewrites an issued one.
    price = models.DecimalField(max_digits=12, decimal_places=2, validators=[MinValueValidator(0)])
    cycle = models.CharField(max_length=8, choices=Cycle.choices, default=Cycle.MONTHLY)
    billing = models.CharField(max_length=8, choices=Billing.choices, default=Billing.PREPAID)
    service = models.CharField(max_length=8, choices=ServiceType.choices, default=ServiceType.PPPOE)
    download_kbps = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    upload_kbps = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    burst_download_kbps = models.PositiveIntegerField(null=True, blank=True)
    burst_upload_kbps = models.PositiveIntegerField(null=True, blank=True)
    burst_seconds = models.PositiveIntegerField(default=8)
    data_cap_gb = models.PositiveIntegerField(null=True, blank=True)
    fup_download_kbps = models.PositiveIntegerField(
        null=True, blank=True, help_text="Speed after the data cap is used up."
    )
    fup_upload_kbps = models.PositiveIntegerField(null=True, blank=True)
    # The data pack a subscriber on a capped plan may buy (portal) or staff may give or
    # sell (account page): both set, or neither (not sold). The price is before VAT
    # where the ISP prices exclusive of VAT, as the plan's price is.
    top_up_gb = models.PositiveIntegerField(
        "top-up pack (GB)", null=True, blank=True, validators=[MinValueValidator(1)]
    )
    top_up_price = models.DecimalField(
        "top-up price (KES)",
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
    )
    description = models.CharField(max_length=255, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["price", "name"]
        constraints = [
            models.CheckConstraint(condition=Q(price__gte=0), name="plan_price_not_negative"),
            # A pack is sold whole: portal.data_top_up and the staff page read both.
            models.CheckConstraint(
                condition=Q(top_up_gb__isnull=True, top_up_price__isnull=True)
                | Q(top_up_gb__gte=1, top_up_price__gte=1, data_cap_gb__isnull=False),
                name="plan_top_up_pack_whole",
            ),
            # An hourly plan is bought, not billed: a postpaid one would be invoiced its
            # hourly price once a period (billing.timeline refuses it).
            models.CheckConstraint(
                condition=~Q(cycle="hourly", billing="postpaid"), name="plan_hourly_is_prepaid"
            ),
        ]

    def __str__(self):
        return self.name


class NetworkSite(models.Model):
    """A node of the access network: POP, tower or OLT, splitter or sector."""

    class Kind(models.TextChoices):
        POP = "pop", "POP"
        TOWER = "tower", "Tower"
        OLT = "olt", "OLT"
        SPLITTER = "splitter", "Splitter"
        SECTOR = "sector", "Sector"
        OTHER = "other", "Other"

    name = models.CharField(max_length=120, unique=True)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )
    branch = models.ForeignKey(
        "staff.Branch", null=True, blank=True, on_delete=models.PROTECT, related_name="sites"
    )
    capacity = models.PositiveIntegerField(
        null=True, blank=True, help_text="How many subscribers it can serve (ports, clients)."
    )
    latitude = models.DecimalField(max_digits=9, decimal_places=6, null=True, blank=True)
    longitude = models.DecimalField(max_digits=9, decimal_places=6, null=True, blank=True)
    notes = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class CustomerQuerySet(models.QuerySet):
    def visible_to(self, user):
        """Customers of the branches this staff member may see."""
        allowed = user.branch_ids()
        return self if allowed is None else self.filter(branch_id__in=allowed)

    def for_list(self):
        return self.select_related("branch", "site")

    def search(self, term: str):
        """Match name, phones, account, email, ID or username, in any case. A phone
        typed as 07.. or +254.. is matched in its stored 254.. form."""
        from ispops.lib.phones import InvalidPhone, normalise_phone

        term = (term or "").strip().lower()
        if not term:
            return self
        digits = "".join(ch for ch in term if ch.isdigit())
        if len(digits) >= 9 and len(digits) >= len(term.replace(" ", "")) - 1:
            try:
                term = normalise_phone(term)
            except InvalidPhone:
                term = digits
        return self.filter(search__contains=term)

    def with_plan(self, plan):
        return self.filter(
            models.Exists(ServiceAccount.objects.filter(customer=models.OuterRef("pk"), plan=plan))
        )

    def at_sites(self, site_ids):
        """Customers at these sites, or with a service account served from one of them."""
        return self.filter(
            Q(site_id__in=site_ids)
            | models.Exists(
                ServiceAccount.objects.filter(customer=models.OuterRef("pk"), site_id__in=site_ids)
            )
        )


class AccountStatus(models.TextChoices):
    """Where a service account is in its life (subscribers.services.TRANSITIONS says how
    it moves); a customer's status is the liveliest of their accounts'."""

    LEAD = "lead", "Lead"
    SURVEY = "survey", "Survey"
    INSTALLING = "installing", "Installing"
    ACTIVE = "active", "Active"
    SUSPENDED = "suspended", "Suspended"
    TERMINATED = "terminated", "Terminated"


class Customer(models.Model):
    Status = AccountStatus

    account = models.CharField(max_length=20, unique=True)
    name = models.CharField(max_length=150)
    phone = models.CharField(max_length=12, blank=True)
    alt_phone = models.CharField(max_length=12, blank=True)
    email = models.EmailField(blank=True)
    id_number = models.CharField("ID number", max_length=20, blank=True)
    address = models.CharField(max_length=255, blank=True)
    latitude = models.DecimalField(max_digits=9, decimal_places=6, null=True, blank=True)
    longitude = models.DecimalField(max_digits=9, decimal_places=6, null=True, blank=True)
    branch = models.ForeignKey(
        "staff.Branch", null=True, blank=True, on_delete=models.PROTECT, related_name="customers"
    )
    site = models.ForeignKey(
        NetworkSite, null=True, blank=True, on_delete=models.SET_NULL, related_name="customers"
    )
    notes = models.TextField(blank=True)
    tags = ArrayField(models.CharField(max_length=40), default=list, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.LEAD)
    # Lower-cased account, name, phones, email and usernames: what the list's search box
    # looks in, kept by services.refresh_customer so one trigram index answers it.
    search = models.TextField(default="", editable=False)
    created_at = models.DateTimeField(default=timezone.now)

    objects = CustomerQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]
        indexes = [
            # The subscriber list: search box, then ordering by name, filters by status/branch.
            GinIndex(name="customer_search_trgm", fields=["search"], opclasses=["gin_trgm_ops"]),
            models.Index(fields=["name", "id"], name="customer_name"),
            models.Index(fields=["status", "branch"], name="customer_status_branch"),
            models.Index(fields=["phone"], name="customer_phone"),
            # The portal finds a phone's customers by phone OR alternative phone: with
            # both indexed PostgreSQL ORs two index scans instead of reading the table.
            models.Index(
                fields=["alt_phone"], name="customer_alt_phone", condition=~models.Q(alt_phone="")
            ),
            GinIndex(name="customer_tags", fields=["tags"]),
        ]

    def __str__(self):
        return f"{self.name} ({self.account})"

    @property
    def map_url(self) -> str:
        if self.latitude is None or self.longitude is None:
            return ""
        return (
            f"https://www.google.com/maps/dir/?api=1&destination={self.latitude},{self.longitude}"
        )


class ServiceAccount(models.Model):
    Status = AccountStatus

    customer = models.ForeignKey(
        Customer, on_delete=models.PROTECT, related_name="service_accounts"
    )
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="service_accounts")
    service = models.CharField(max_length=8, choices=ServiceType.choices)
    username = models.CharField(max_length=64, blank=True)
    password = EncryptedTextField(blank=True)
    static_ip = models.GenericIPAddressField(null=True, blank=True, protocol="IPv4")
    mac = models.CharField("MAC address", max_length=17, blank=True)
    router = models.ForeignKey(
        "network.Router",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="service_accounts",
    )
    site = models.ForeignKey(
        NetworkSite,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="service_accounts",
    )
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.LEAD)
    # A soft suspension keeps the login working but walls it in (the pay page); a hard one
    # disables it. Only meaningful while suspended.
    suspension = models.CharField(
        max_length=4,
        choices=[("soft", "Soft (walled garden)"), ("hard", "Hard (disabled)")],
        blank=True,
    )
    activated_at = models.DateTimeField(null=True, blank=True)
    suspended_at = models.DateTimeField(null=True, blank=True)
    terminated_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Prepaid plans.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["customer_id", "id"]
        constraints = [
            # A login and an address belong to one live account; a terminated account
            # frees them for reuse.
            models.UniqueConstraint(
                fields=["username"],
                name="service_username_unique_live",
                condition=~Q(username="") & ~Q(status="terminated"),
            ),
            models.UniqueConstraint(
                fields=["static_ip"],
                name="service_static_ip_unique_live",
                condition=Q(static_ip__isnull=False) & ~Q(status="terminated"),
            ),
        ]
        indexes = [
            models.Index(fields=["plan", "status"], name="service_plan_status"),
            models.Index(fields=["site", "status"], name="service_site_status"),
            models.Index(fields=["status", "expires_at"], name="service_status_expiry"),
        ]

    def __str__(self):
        return self.username or f"{self.customer.account}/{self.pk}"


class StatusChange(models.Model):
    """One move of a service account through the status machine."""

    service_account = models.ForeignKey(
        ServiceAccount, on_delete=models.CASCADE, related_name="status_changes"
    )
    from_status = models.CharField(max_length=12, blank=True)
    to_status = models.CharField(max_length=12)
    at = models.DateTimeField(default=timezone.now)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    actor_label = models.CharField(max_length=200)
    reason = models.CharField(max_length=255)

    class Meta:
        ordering = ["-at", "-id"]
        # The month's changes (net adds on the owner's home) are read by time.
        indexes = [models.Index(fields=["at"], name="status_change_at")]

    def __str__(self):
        return f"{self.from_status or 'new'} -> {self.to_status}"


class AddOn(models.Model):
    class Kind(models.TextChoices):
        OTT = "ott", "OTT bundle"
        VOICE = "voice", "Voice"
        STATIC_IP = "static_ip", "Static IP"
        EXTRA_DATA = "extra_data", "Extra data"
        OTHER = "other", "Other"

    service_account = models.ForeignKey(
        ServiceAccount, on_delete=models.CASCADE, related_name="addons"
    )
    kind = models.CharField(max_length=12, choices=Kind.choices)
    name = models.CharField(max_length=80)
    price = models.DecimalField(max_digits=12, decimal_places=2, validators=[MinValueValidator(0)])
    starts_on = models.DateField(default=timezone.localdate)
    ends_on = models.DateField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["starts_on", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_on__isnull=True) | Q(ends_on__gte=models.F("starts_on")),
                name="addon_ends_after_start",
            ),
        ]

    def __str__(self):
        return self.name

    def in_force(self, day) -> bool:
        return self.starts_on <= day and (self.ends_on is None or day <= self.ends_on)


class Discount(models.Model):
    class Kind(models.TextChoices):
        PERCENT = "percent", "Percentage"
        FIXED = "fixed", "Fixed amount"

    service_account = models.ForeignKey(
        ServiceAccount, on_delete=models.CASCADE, related_name="discounts"
    )
    kind = models.CharField(max_length=8, choices=Kind.choices)
    value = models.DecimalField(max_digits=12, decimal_places=2, validators=[MinValueValidator(0)])
    reason = models.CharField(max_length=120)
    starts_on = models.DateField(default=timezone.localdate)
    # Discounts always end: an open-ended one is how revenue quietly leaks.
    ends_on = models.DateField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["starts_on", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_on__gte=models.F("starts_on")), name="discount_ends_after_start"
            ),
            models.CheckConstraint(
                condition=~Q(kind="percent") | Q(value__lte=100), name="discount_percent_max_100"
            ),
        ]

    def __str__(self):
        return f"{self.value}{'%' if self.kind == self.Kind.PERCENT else ''} {self.reason}"

    def in_force(self, day) -> bool:
        return self.starts_on <= day <= self.ends_on


class Installation(models.Model):
    """A lead on its way to an active service: one per service account."""

    class Stage(models.TextChoices):
        LEAD = "lead", "Lead"
        SURVEY = "survey", "Site survey"
        QUOTED = "quoted", "Quotation approved"
        SCHEDULED = "scheduled", "Installation scheduled"
        EQUIPPED = "equipped", "Equipment allocated"
        INSTALLED = "installed", "Installed"
        ACTIVATED = "activated", "Activated"
        CONFIRMED = "confirmed", "Customer confirmed"
        CANCELLED = "cancelled", "Cancelled"

    service_account = models.OneToOneField(
        ServiceAccount, on_delete=models.CASCADE, related_name="installation"
    )
    stage = models.CharField(max_length=10, choices=Stage.choices, default=Stage.LEAD)
    stage_since = models.DateTimeField(default=timezone.now)
    source = models.CharField(max_length=40, blank=True, help_text="Walk-in, referral, web…")
    survey_notes = models.TextField(blank=True)
    quote_amount = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    technician = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="installations",
    )
    scheduled_for = models.DateField(null=True, blank=True)
    equipment_serials = ArrayField(models.CharField(max_length=64), default=list, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    technician_notes = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["stage_since"]
        indexes = [
            models.Index(fields=["technician", "scheduled_for"], name="installation_tech_day"),
            models.Index(fields=["stage", "stage_since"], name="installation_stage"),
        ]

    def __str__(self):
        return f"Installation for {self.service_account.customer}"


class InstallationStep(models.Model):
    """Who moved an installation to which stage, and when."""

    installation = models.ForeignKey(Installation, on_delete=models.CASCADE, related_name="steps")
    stage = models.CharField(max_length=10, choices=Installation.Stage.choices)
    at = models.DateTimeField(default=timezone.now)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    actor_label = models.CharField(max_length=200)
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self):
        return f"{self.get_stage_display()} at {self.at:%Y-%m-%d %H:%M}"


class ServiceIntent(models.Model):
    """A request to another app (start billing, provision or suspend on the router),
    written in the same transaction as the change that needs it, so none is lost.
    The billing and network apps take these up; until they exist the rows wait."""

    class Kind(models.TextChoices):
        START_BILLING = "billing.start", "Start billing"
        STOP_BILLING = "billing.stop", "Stop billing"
        PROVISION = "network.provision", "Provision on the router"
        SUSPEND = "network.suspend", "Suspend on the router"
        RESTORE = "network.restore", "Restore on the router"
        REMOVE = "network.remove", "Remove from the router"

    service_account = models.ForeignKey(
        ServiceAccount, on_delete=models.CASCADE, related_name="intents"
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    created_at = models.DateTimeField(default=timezone.now)
    actor_label = models.CharField(max_length=200)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            # Consumers pick up what is still pending, oldest first.
            models.Index(
                fields=["kind", "created_at"],
                name="intent_pending",
                condition=Q(processed_at__isnull=True),
            ),
        ]

    def __str__(self):
        return self.get_kind_display()


class ImportJob(models.Model):
    """A CSV import from the upload page: the file, its progress and its report."""

    class Kind(models.TextChoices):
        PLANS = "plans", "Plans"
        SUBSCRIBERS = "subscribers", "Subscribers"

    class State(models.TextChoices):
        PENDING = "pending", "Waiting for a worker"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Refused"

    kind = models.CharField(max_length=12, choices=Kind.choices)
    filename = models.CharField(max_length=255)
    # The uploaded file, PPPoE passwords included: stored encrypted, and emptied once the
    # job has finished (tasks.run_import), since only the worker ever reads it.
    content = EncryptedTextField(blank=True)
    dry_run = models.BooleanField(default=False)
    state = models.CharField(max_length=8, choices=State.choices, default=State.PENDING)
    total_rows = models.PositiveIntegerField(default=0)
    processed_rows = models.PositiveIntegerField(default=0)
    created_rows = models.PositiveIntegerField(default=0)
    # [{"line": 3, "reason": "..."}], line numbers counting the header as line 1.
    errors = models.JSONField(default=list)
    message = models.CharField(max_length=255, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.get_kind_display()} import {self.filename}"

    @property
    def percent(self) -> int:
        if not self.total_rows:
            return 0
        return min(100, self.processed_rows * 100 // self.total_rows)


class PlanChange(models.Model):
    """A plan change waiting for the end of the paid period (a prepaid term's end, a
    postpaid period's start), asked for in the portal under an ISP's "at renewal"
    policy. Applied through services.change_plan at `at` by a periodic task
    (plan_changes.apply_due); a change made at once in the meantime cancels it."""

    class State(models.TextChoices):
        PENDING = "pending", "Scheduled"
        DONE = "done", "Applied"
        CANCELLED = "cancelled", "Cancelled"
        FAILED = "failed", "Refused"

    service_account = models.ForeignKey(
        ServiceAccount, on_delete=models.CASCADE, related_name="plan_changes"
    )
    # The plan it was asked from: if staff moved the account to another plan since,
    # the change is not applied on top of theirs.
    from_plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="+")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="+")
    at = models.DateTimeField(help_text="When the change takes effect.")
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    asked_by = models.CharField(max_length=200)
    asked_at = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.CharField(max_length=200, blank=True)
    note = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["at", "id"]
        constraints = [
            # One change waits per account: a new one replaces it (plan_changes.schedule
            # cancels the old row first, in the same transaction).
            models.UniqueConstraint(
                fields=["service_account"],
                condition=Q(state="pending"),
                name="plan_change_one_pending",
            ),
        ]
        indexes = [
            # The periodic task picks the pending changes that are due.
            models.Index(fields=["at"], name="plan_change_due", condition=Q(state="pending")),
        ]

    def __str__(self):
        return f"{self.service_account_id}: plan {self.plan_id} at {self.at:%Y-%m-%d %H:%M}"
