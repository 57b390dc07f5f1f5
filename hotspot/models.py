"""The hotspot business: packages sold by the hour, day or month, vouchers printed in
batches and sold by agents, and the entitlements they become on a router's hotspot.

An entitlement is what a buyer has: a login on one router's hotspot (a voucher's code,
or one made for a purchase or a trial), a package's time and data, and its place in
that login's queue. At most one entitlement of a login is live at a time (a partial
unique constraint): a second one on the same login either extends it or waits behind
it, per the ISP's stacking rule, never runs beside it.

Byte units: every limit and counter here is in bytes (RouterOS counts bytes; a
package's data limit is entered in MB or GB and stored as bytes, 1 GB = 10^9 bytes as
routers and operators count it).
"""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from ispops.lib.settingsrow import SettingsRow


class Stacking(models.TextChoices):
    EXTEND = "extend", "Same package adds time and data; another package queues after"
    QUEUE = "queue", "Every purchase queues after the current one"
    REFUSE = "refuse", "Refuse while one is active"


class HotspotSettings(SettingsRow):
    """One row per ISP (pk=1)."""

    code_length = models.PositiveSmallIntegerField(
        "voucher code length",
        default=8,
        validators=[MinValueValidator(6), MaxValueValidator(16)],
    )
    stacking = models.CharField(max_length=8, choices=Stacking.choices, default=Stacking.EXTEND)
    wrong_codes_before_lockout = models.PositiveSmallIntegerField(
        default=5, validators=[MinValueValidator(1), MaxValueValidator(50)]
    )
    lockout_minutes = models.PositiveSmallIntegerField(
        default=15, validators=[MinValueValidator(1), MaxValueValidator(1440)]
    )
    trial_package = models.ForeignKey(
        "Package",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Empty: no free trial.",
    )
    trial_every_days = models.PositiveSmallIntegerField(
        "one trial per phone every (days)",
        default=7,
        validators=[MinValueValidator(1), MaxValueValidator(365)],
    )
    # Who is told at 80 % and 100 % of a data limit (by SMS to the buyer's phone).
    warn_at_percent = models.PositiveSmallIntegerField(
        default=80, validators=[MinValueValidator(50), MaxValueValidator(99)]
    )
    # The walled garden pushed to every hotspot router besides the ISP's own portal host
    # (hotspot.router.walled_garden): hosts a buyer may reach before paying.
    walled_garden_hosts = models.TextField(
        blank=True, help_text="One host per line, e.g. a help page or a CDN the portal uses."
    )

    class Meta:
        verbose_name_plural = "hotspot settings"

    def __str__(self):
        return "Hotspot settings"


class Package(models.Model):
    """What a hotspot sells: time (and optionally data) at a speed, for so many devices.
    On each router where it is sold it is a /ip/hotspot/user/profile (profile_name)."""

    class Starts(models.TextChoices):
        PURCHASE = "purchase", "From purchase"
        FIRST_LOGIN = "first_login", "From first login"

    name = models.CharField(max_length=60, unique=True)
    price = models.DecimalField(max_digits=10, decimal_places=2, validators=[MinValueValidator(0)])
    validity_minutes = models.PositiveIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(366 * 24 * 60)]
    )
    starts = models.CharField(max_length=12, choices=Starts.choices, default=Starts.PURCHASE)
    data_limit_bytes = models.BigIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)], help_text="Empty: unlimited."
    )
    download_kbps = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    upload_kbps = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    devices = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(20)]
    )
    idle_timeout_minutes = models.PositiveSmallIntegerField(default=10)
    mac_cookie_hours = models.PositiveSmallIntegerField(
        default=24, help_text="A device is logged in again without the page for this long."
    )
    # Where it is sold: no router chosen means every hotspot router of the ISP.
    routers = models.ManyToManyField("network.Router", blank=True, related_name="hotspot_packages")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["price", "name"]

    def __str__(self):
        return self.name

    @property
    def profile_name(self) -> str:
        """The hotspot user profile on routers (ids, not names: a rename moves nothing)."""
        return f"ispops-hs-{self.pk}"


class VoucherBatch(models.Model):
    """Cards printed together: one package, one price, optionally one site and agent."""

    package = models.ForeignKey(Package, on_delete=models.PROTECT, related_name="batches")
    count = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    price = models.DecimalField(max_digits=10, decimal_places=2, validators=[MinValueValidator(0)])
    site = models.ForeignKey(
        "subscribers.NetworkSite", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="voucher_batches",
    )
    unsold_expire_at = models.DateTimeField(null=True, blank=True)
    # The agent's share of each card's price when it is sold (hotspot.agents); set per
    # batch so a new deal with an agent leaves cards already printed as they were.
    commission_percent = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=0,
        validators=[MinValueValidator(0), MaxValueValidator(100)],
    )
    note = models.CharField(max_length=200, blank=True)
    created_by = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"Batch {self.pk} ({self.count} x {self.package})"


class Voucher(models.Model):
    """One card. Its code is the hotspot login (and password) once redeemed."""

    class State(models.TextChoices):
        GENERATED = "generated", "Generated"
        ASSIGNED = "assigned", "With the agent"
        SOLD = "sold", "Sold"
        REDEEMED = "redeemed", "Redeemed"
        EXPIRED = "expired", "Expired"
        REVOKED = "revoked", "Revoked"

    batch = models.ForeignKey(VoucherBatch, on_delete=models.CASCADE, related_name="vouchers")
    code = models.CharField(max_length=16, unique=True)  # upper case, no look-alikes
    state = models.CharField(max_length=10, choices=State.choices, default=State.GENERATED)
    sold_at = models.DateTimeField(null=True, blank=True)
    sold_to = models.CharField(max_length=12, blank=True)  # buyer's phone, if given
    redeemed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["batch", "state"], name="voucher_batch_state")]

    def __str__(self):
        return self.code


class Entitlement(models.Model):
    """Time and data on one login of one router's hotspot (module docstring)."""

    class Source(models.TextChoices):
        VOUCHER = "voucher", "Voucher"
        PURCHASE = "purchase", "M-Pesa purchase"
        TRIAL = "trial", "Free trial"
        STAFF = "staff", "Given by staff"

    class State(models.TextChoices):
        QUEUED = "queued", "Waiting for the current one to end"
        LIVE = "live", "Live"
        ENDED = "ended", "Ended"

    login = models.CharField(max_length=64)
    password = models.CharField(max_length=64)
    package = models.ForeignKey(Package, on_delete=models.PROTECT, related_name="entitlements")
    router = models.ForeignKey(
        "network.Router", on_delete=models.PROTECT, related_name="hotspot_entitlements"
    )
    source = models.CharField(max_length=8, choices=Source.choices)
    voucher = models.OneToOneField(
        Voucher, null=True, blank=True, on_delete=models.PROTECT, related_name="entitlement"
    )
    payment = models.ForeignKey(
        "payments.Payment", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    phone = models.CharField(max_length=12, blank=True)
    mac = models.CharField(max_length=17, blank=True)  # the device it was bought on
    state = models.CharField(max_length=8, choices=State.choices)
    minutes = models.PositiveIntegerField()  # the package's validity, plus any extension
    data_limit_bytes = models.BigIntegerField(null=True, blank=True)
    used_bytes = models.BigIntegerField(default=0)
    starts_at = models.DateTimeField(null=True, blank=True)  # None: from first login
    ends_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    # When it went live (granted live, or its turn came): a package that runs from first
    # login starts at the first session seen after this, never before.
    live_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(max_length=20, blank=True)  # expired, data, revoked
    warned_percent = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    # The router side (hotspot.router): the login must be made to match this row again
    # (a grant, an extension, an end); claimed by a conditional update, retried.
    router_pending = models.BooleanField(default=True)
    router_next_at = models.DateTimeField(default=timezone.now)
    router_attempts = models.PositiveIntegerField(default=0)
    router_error = models.TextField(blank=True)
    # The guard written on the router user (limit-bytes-total, limit-uptime in seconds),
    # so that the limits hold while ispops is down: fixed when the user is written for
    # this entitlement and moved only by an extension, so a sync writes nothing new.
    guard_bytes = models.BigIntegerField(null=True, blank=True)
    guard_seconds = models.BigIntegerField(null=True, blank=True)
    # The router's counters last seen for this login (hotspot.usage): the user's totals
    # and each session's bytes and start, so usage is counted from deltas and a counter
    # that restarts (reconnection, reboot) loses nothing.
    usage_seen = models.JSONField(default=dict, blank=True)
    usage_polled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["router", "login"], condition=Q(state="live"), name="one_live_per_login"
            )
        ]
        indexes = [
            models.Index(fields=["ends_at"], name="entitlement_due", condition=Q(state="live")),
            # hotspot.router.push claims the router's pending logins.
            models.Index(
                fields=["router", "router_next_at"],
                name="entitlement_router_pending",
                condition=Q(router_pending=True),
            ),
            models.Index(fields=["router", "login", "state"], name="entitlement_login"),
            models.Index(fields=["phone", "-created_at"], name="entitlement_phone"),
        ]

    def __str__(self):
        return f"{self.login} {self.package} ({self.get_state_display()})"


class Grant(models.Model):
    """What one voucher, payment, trial or staff gift added to an entitlement: a new
    one, time and data on the live one, or one queued behind it. A payment or voucher
    grants once (unique here, whichever entitlement it went to)."""

    class Outcome(models.TextChoices):
        NEW = "new", "Started"
        EXTEND = "extend", "Added to the live one"
        QUEUE = "queue", "Queued after the live one"

    entitlement = models.ForeignKey(Entitlement, on_delete=models.PROTECT, related_name="grants")
    package = models.ForeignKey(Package, on_delete=models.PROTECT, related_name="+")
    source = models.CharField(max_length=8, choices=Entitlement.Source.choices)
    outcome = models.CharField(max_length=8, choices=Outcome.choices)
    voucher = models.OneToOneField(
        Voucher, null=True, blank=True, on_delete=models.PROTECT, related_name="grant"
    )
    payment = models.OneToOneField(
        "payments.Payment", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    minutes = models.PositiveIntegerField()
    data_limit_bytes = models.BigIntegerField(null=True, blank=True)
    phone = models.CharField(max_length=12, blank=True)
    actor = models.CharField(max_length=200, blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self):
        return f"{self.get_outcome_display()}: {self.package}"


class Bypass(models.Model):
    """A device let through the hotspot without a login (a TV, a CCTV camera): an
    /ip/hotspot/ip-binding of type bypassed for its MAC on one router, until ends_at
    (empty: until ended by staff). hotspot.router keeps the router in step."""

    class State(models.TextChoices):
        ACTIVE = "active", "Active"
        ENDED = "ended", "Ended"

    router = models.ForeignKey(
        "network.Router", on_delete=models.PROTECT, related_name="hotspot_bypasses"
    )
    mac = models.CharField(max_length=17)  # upper case, colon separated
    note = models.CharField(max_length=200, blank=True)
    state = models.CharField(max_length=8, choices=State.choices, default=State.ACTIVE)
    starts_at = models.DateTimeField(default=timezone.now)
    ends_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    payment = models.OneToOneField(
        "payments.Payment", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    router_pending = models.BooleanField(default=True)
    router_error = models.TextField(blank=True)
    created_by = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # hotspot.entitlements.add_bypass extends the active one instead of a second.
            models.UniqueConstraint(
                fields=["router", "mac"], condition=Q(state="active"), name="one_bypass_per_mac"
            )
        ]
        indexes = [
            models.Index(fields=["ends_at"], name="bypass_due", condition=Q(state="active")),
        ]

    def __str__(self):
        return f"{self.mac} bypassed on {self.router}"


class BypassOffer(models.Model):
    """What letting a device through is sold as: a length of time at a price, at some
    routers (none ticked: every hotspot router). Sold on the captive page and by staff."""

    name = models.CharField(max_length=100)
    minutes = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    price = models.DecimalField(max_digits=12, decimal_places=2)
    routers = models.ManyToManyField("network.Router", blank=True, related_name="bypass_offers")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["price", "name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(price__gte=0) & Q(minutes__gte=1), name="bypass_offer_sane"
            ),
        ]

    def __str__(self):
        return self.name


class BypassSale(models.Model):
    """Time for a bypassed device, sold or given: the money's record (cash taken at the
    counter, an M-Pesa payment, or nothing for a gift). A sale by STK push is written
    before the push and waits for its payment (bypass empty until then); hotspot.
    bypass_sales grants it once. The sales page counts granted sales at `amount`."""

    class Method(models.TextChoices):
        CASH = "cash", "Cash"
        MPESA = "mpesa", "M-Pesa"
        FREE = "free", "Free"

    # The push's AccountReference (BP...), or the staff form's one-time token: a form
    # posted twice finds its sale by it and records the money once.
    reference = models.CharField(max_length=40, unique=True)
    router = models.ForeignKey("network.Router", on_delete=models.PROTECT, related_name="+")
    mac = models.CharField(max_length=17)
    offer = models.ForeignKey(
        BypassOffer, null=True, blank=True, on_delete=models.PROTECT, related_name="sales"
    )
    minutes = models.PositiveIntegerField(null=True, blank=True)  # None: until ended
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    method = models.CharField(max_length=5, choices=Method.choices)
    phone = models.CharField(max_length=12, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    stk = models.OneToOneField(
        "payments.StkRequest", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    payment = models.OneToOneField(
        "payments.Payment", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    bypass = models.ForeignKey(
        Bypass, null=True, blank=True, on_delete=models.PROTECT, related_name="sales"
    )
    note = models.CharField(max_length=200, blank=True)
    sold_by = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now)
    granted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(amount__gte=0) & (~Q(method="free") | Q(amount=0)),
                name="bypass_sale_amount",
            ),
        ]
        indexes = [
            # The sales page: granted sales per day.
            models.Index(fields=["granted_at"], name="bypass_sale_granted"),
            # Prompts per phone and per address in a window (bypass_sales.start_purchase).
            models.Index(fields=["phone", "created_at"], name="bypass_sale_phone"),
        ]

    def __str__(self):
        return f"{self.get_method_display()} {self.amount} for {self.mac}"


class CodeAttempt(models.Model):
    """A voucher code typed on the captive page; wrong ones count towards a lockout of
    the device (MAC) and the address."""

    mac = models.CharField(max_length=17, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    ok = models.BooleanField(default=False)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["mac", "at"], name="hs_attempt_mac"),
            models.Index(fields=["ip", "at"], name="hs_attempt_ip"),
        ]

    def __str__(self):
        return f"{'right' if self.ok else 'wrong'} code from {self.mac or self.ip}"


class Trial(models.Model):
    """A free trial given to a phone (proven by SMS code: MACs are randomised)."""

    phone = models.CharField(max_length=12)
    mac = models.CharField(max_length=17, blank=True)
    entitlement = models.OneToOneField(Entitlement, on_delete=models.CASCADE, related_name="trial")
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["phone", "-at"], name="hs_trial_phone")]

    def __str__(self):
        return f"trial for {self.phone} at {self.at:%Y-%m-%d %H:%M}"


class AgentEntry(models.Model):
    """An agent's float and commission ledger: float given (+), cards taken at their
    price (-), commission earned (+), payouts (-). The balance is the sum."""

    class Kind(models.TextChoices):
        FLOAT = "float", "Float given"
        CARDS = "cards", "Cards taken"
        COMMISSION = "commission", "Commission"
        PAYOUT = "payout", "Paid out"

    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="agent_entries"
    )
    kind = models.CharField(max_length=10, choices=Kind.choices)
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    voucher = models.ForeignKey(
        Voucher, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    batch = models.ForeignKey(
        VoucherBatch, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    note = models.CharField(max_length=200, blank=True)
    recorded_by = models.CharField(max_length=200)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["agent", "-at"], name="agent_entry_agent")]

    def __str__(self):
        return f"{self.get_kind_display()} {self.amount}"


class Purchase(models.Model):
    """A package bought on the captive page by STK push: what the push is for until its
    payment grants the entitlement (hotspot.captive_purchase.purchase_paid, registered as the
    "hotspot" payment purpose). The login is the buyer's phone (captive.phone_login)."""

    # The push's AccountReference: the purchase is written before the push is sent, so
    # a callback that beats our own record of the push still finds what it paid for.
    reference = models.CharField(max_length=12, unique=True)
    stk = models.OneToOneField(
        "payments.StkRequest",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="hotspot_purchase",
    )
    package = models.ForeignKey(Package, on_delete=models.PROTECT, related_name="purchases")
    router = models.ForeignKey("network.Router", on_delete=models.PROTECT, related_name="+")
    phone = models.CharField(max_length=12)
    mac = models.CharField(max_length=17, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    login = models.CharField(max_length=64)
    # Several purchases may land on one entitlement: the same package bought again on a
    # live login extends it (the stacking rule), so this is not one-to-one.
    entitlement = models.ForeignKey(
        Entitlement, null=True, blank=True, on_delete=models.SET_NULL, related_name="purchases"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.package} for {self.phone}"
