"""Network: MikroTik routers (the connection details live here; provisioning, drift
and monitoring come with the network issue)."""

import re

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from ispops.lib.crypto import EncryptedTextField

# Every field that goes into a RouterOS API word, or is printed next to one, is one
# line of text: a CR/LF in a password once let an admin write commands into whatever
# line protocol listened at the router's address (Redis), and a NUL is refused by
# PostgreSQL anyway. Notes are free text for people (several lines allowed) but never
# NUL or other control characters.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_BUT_LINES = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def has_control_characters(value, *, lines_allowed: bool = False) -> bool:
    pattern = _CONTROL_BUT_LINES if lines_allowed else _CONTROL
    return bool(pattern.search(str(value or "")))


def no_control_characters(value) -> None:
    if has_control_characters(value):
        raise ValidationError("line breaks and other control characters are not allowed here")


def no_control_characters_but_lines(value) -> None:
    if has_control_characters(value, lines_allowed=True):
        raise ValidationError("control characters are not allowed here")


class Router(models.Model):
    class Status(models.TextChoices):
        UNKNOWN = "unknown", "Not checked"
        ONLINE = "online", "Online"
        OFFLINE = "offline", "Offline"

    name = models.CharField(max_length=80, unique=True, validators=[no_control_characters])
    host = models.CharField(max_length=255, validators=[no_control_characters])
    port = models.PositiveIntegerField(default=8728)
    username = models.CharField(max_length=64, validators=[no_control_characters])
    password = EncryptedTextField(blank=True, validators=[no_control_characters])
    use_tls = models.BooleanField(default=False)
    branch = models.ForeignKey(
        "staff.Branch", null=True, blank=True, on_delete=models.PROTECT, related_name="routers"
    )
    site = models.ForeignKey(
        "subscribers.NetworkSite",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="routers",
    )
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.UNKNOWN)
    notes = models.TextField(blank=True, validators=[no_control_characters_but_lines])
    created_at = models.DateTimeField(default=timezone.now)
    # Filled by monitoring and "test connection".
    identity = models.CharField(max_length=80, blank=True)
    version = models.CharField(max_length=40, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=255, blank=True)
    # The interface towards the upstream and what it can carry: utilisation alerts.
    uplink_interface = models.CharField(
        max_length=64, default="ether1", validators=[no_control_characters]
    )
    uplink_capacity_mbps = models.PositiveIntegerField(null=True, blank=True)
    drift_checked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    # The fields that travel to the router (or name it) in API words.
    WIRE_FIELDS = ("name", "host", "username", "password", "uplink_interface")

    def control_character_fields(self) -> list[str]:
        """The fields holding characters no router field may hold (checked again before
        every connection, whatever path wrote the row)."""
        bad = [f for f in self.WIRE_FIELDS if has_control_characters(getattr(self, f))]
        if has_control_characters(self.notes, lines_allowed=True):
            bad.append("notes")
        return bad


class RouterJobQuerySet(models.QuerySet):
    def due(self, now=None):
        now = now or timezone.now()
        return self.filter(state__in=RouterJob.DUE_STATES, next_attempt_at__lte=now)


class RouterJob(models.Model):
    """One change the router must make, kept until the router has made it.

    Written in the same transaction as the change that needs it (activation, suspension,
    a plan change); a worker applies the desired state and reads it back. A router that
    cannot be reached is retried with exponential backoff; the job is never dropped.
    """

    class Action(models.TextChoices):
        PROVISION = "provision", "Provision (create or update)"
        SUSPEND = "suspend", "Suspend"
        RESTORE = "restore", "Restore"
        REMOVE = "remove", "Remove"
        SYNC_PLAN = "sync_plan", "Update plan profile"

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        RETRY = "retry", "Waiting to retry"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    # The states a job can be claimed in (once its next attempt is due).
    DUE_STATES = (State.PENDING, State.RETRY)

    router = models.ForeignKey(Router, on_delete=models.CASCADE, related_name="jobs")
    service_account = models.ForeignKey(
        "subscribers.ServiceAccount",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="router_jobs",
    )
    plan = models.ForeignKey(
        "subscribers.Plan", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    action = models.CharField(max_length=12, choices=Action.choices)
    state = models.CharField(max_length=8, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_error = models.TextField(blank=True)
    result = models.CharField(max_length=255, blank=True)
    created_by = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = RouterJobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # Workers and the sweep pick due jobs per router, oldest first.
            models.Index(fields=["router", "state", "next_attempt_at"], name="routerjob_due"),
            models.Index(fields=["service_account", "-created_at"], name="routerjob_account"),
        ]

    def __str__(self):
        return f"{self.get_action_display()} on {self.router}"


class RouterSample(models.Model):
    """A poll of a router's health. Raw points are kept for a day, then averaged into
    5-minute points (kept 30 days), then hourly ones (kept a year)."""

    class Resolution(models.TextChoices):
        RAW = "raw", "Raw"
        FIVE_MIN = "5m", "5 minutes"
        HOUR = "1h", "1 hour"

    router = models.ForeignKey(Router, on_delete=models.CASCADE, related_name="samples")
    at = models.DateTimeField()
    resolution = models.CharField(max_length=3, choices=Resolution.choices, default="raw")
    cpu_load = models.PositiveSmallIntegerField()
    free_memory = models.BigIntegerField()
    total_memory = models.BigIntegerField()
    uptime_seconds = models.BigIntegerField()
    active_sessions = models.PositiveIntegerField()

    class Meta:
        ordering = ["at"]
        indexes = [models.Index(fields=["router", "resolution", "at"], name="routersample_series")]

    def __str__(self):
        return f"{self.router} at {self.at:%Y-%m-%d %H:%M}"


class InterfaceSample(models.Model):
    """Traffic through one router interface, as rates between two polls."""

    router = models.ForeignKey(Router, on_delete=models.CASCADE, related_name="interface_samples")
    interface = models.CharField(max_length=64)
    at = models.DateTimeField()
    resolution = models.CharField(
        max_length=3, choices=RouterSample.Resolution.choices, default="raw"
    )
    rx_bytes = models.BigIntegerField(help_text="Counter value at the poll.")
    tx_bytes = models.BigIntegerField()
    rx_bps = models.BigIntegerField(default=0)
    tx_bps = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["at"]
        indexes = [
            models.Index(
                fields=["router", "interface", "resolution", "at"], name="ifsample_series"
            ),
        ]

    def __str__(self):
        return f"{self.router}/{self.interface} at {self.at:%Y-%m-%d %H:%M}"


class ActiveSession(models.Model):
    """Who is online on a router right now (replaced at every poll)."""

    router = models.ForeignKey(Router, on_delete=models.CASCADE, related_name="sessions")
    username = models.CharField(max_length=64)
    service = models.CharField(max_length=10)
    address = models.CharField(max_length=45, blank=True)
    caller_id = models.CharField(max_length=40, blank=True)
    uptime_seconds = models.BigIntegerField(default=0)
    rx_bytes = models.BigIntegerField(default=0)
    tx_bytes = models.BigIntegerField(default=0)
    seen_at = models.DateTimeField()

    class Meta:
        ordering = ["username"]
        constraints = [
            models.UniqueConstraint(
                fields=["router", "service", "username"], name="activesession_unique"
            ),
        ]
        indexes = [models.Index(fields=["username"], name="activesession_username")]

    def __str__(self):
        return f"{self.username} on {self.router}"


def visible(queryset, user):
    """Rows (routers, or rows with a branch) of the branches this staff member sees;
    rows of no branch are everyone's."""
    allowed = user.branch_ids()
    if allowed is None:
        return queryset
    return queryset.filter(models.Q(branch__isnull=True) | models.Q(branch_id__in=allowed))


class Alert(models.Model):
    """Something staff must look at: a router not answering, CPU staying high, an uplink
    near its capacity. One open alert per router and kind; it resolves by itself."""

    class Kind(models.TextChoices):
        ROUTER_DOWN = "router_down", "Router not answering"
        CPU_HIGH = "cpu_high", "CPU high"
        UPLINK_FULL = "uplink_full", "Uplink near capacity"

    router = models.ForeignKey(Router, on_delete=models.CASCADE, related_name="alerts")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    message = models.CharField(max_length=255)
    opened_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    notified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-opened_at"]
        constraints = [
            # Raising an alert that is already open updates it instead of adding one.
            models.UniqueConstraint(
                fields=["router", "kind"],
                condition=models.Q(resolved_at__isnull=True),
                name="alert_one_open_per_kind",
            ),
        ]

    def __str__(self):
        return f"{self.get_kind_display()}: {self.router}"


class DriftItem(models.Model):
    """One difference between a router and the database, found by a drift check."""

    class Kind(models.TextChoices):
        UNBILLED = "unbilled", "On the router, not billed"
        MISSING = "missing", "Paid, missing on the router"
        WRONG_PROFILE = "wrong_profile", "Wrong profile"
        WRONG_STATE = "wrong_state", "Wrong enabled/disabled state"

    router = models.ForeignKey(Router, on_delete=models.CASCADE, related_name="drift")
    kind = models.CharField(max_length=14, choices=Kind.choices)
    service = models.CharField(max_length=10)
    username = models.CharField(max_length=64)
    service_account = models.ForeignKey(
        "subscribers.ServiceAccount",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
    )
    detail = models.CharField(max_length=255)
    # What is at stake per billing cycle: an unbilled login is revenue given away.
    monthly_value = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    found_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["kind", "username"]

    def __str__(self):
        return f"{self.get_kind_display()}: {self.username}"


# --- PPPoE usage and fair use (issue 14; network.pppoe_usage, network.fup) --------------


class FupLevel(models.TextChoices):
    """What a PPPoE account's data allowance allows now (network.fup): the kind of the
    ladder step in force (UsageMeter.fup_step names which one)."""

    FULL = "full", "Full speed"
    THROTTLED = "throttled", "Slowed (fair usage)"
    BLOCKED = "blocked", "Blocked until a top-up"


class FupStep(models.Model):
    """One step of a plan's fair-usage ladder (network.fup): once the period's usage
    reaches `after_gb` (plus the period's top-ups), the account runs at these speeds, or
    is blocked until a top-up when they are empty. A plan with no steps has the one-step
    ladder of its own fields (data_cap_gb, fup_download_kbps, fup_upload_kbps).

    The whole ladder is checked by check_ladder (thresholds strictly increasing, speeds
    falling, a block only last); the constraints hold what one row can."""

    plan = models.ForeignKey("subscribers.Plan", on_delete=models.CASCADE, related_name="fup_steps")
    after_gb = models.PositiveIntegerField()
    download_kbps = models.PositiveIntegerField(null=True, blank=True)
    upload_kbps = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["plan", "after_gb"]
        constraints = [
            # A step's number (its profile "<plan>-fup<n>") is its place in this order.
            models.UniqueConstraint(fields=["plan", "after_gb"], name="fup_step_once"),
            models.CheckConstraint(condition=Q(after_gb__gte=1), name="fup_step_after_some"),
            # Both speeds (slowed) or neither (blocked): half a rate-limit means nothing.
            models.CheckConstraint(
                condition=Q(download_kbps__isnull=True, upload_kbps__isnull=True)
                | Q(download_kbps__gte=1, upload_kbps__gte=1),
                name="fup_step_speeds_or_block",
            ),
        ]

    def __str__(self):
        return f"{self.plan_id} after {self.after_gb} GB"

    @property
    def blocks(self) -> bool:
        return self.download_kbps is None


def check_ladder(steps, *, plan_download_kbps: int, plan_upload_kbps: int) -> list[str]:
    """What is wrong with a ladder (steps in any order, each with after_gb, download_kbps,
    upload_kbps; speeds None = block): [] when it is sound. Each step must be slower
    than the one before (the plan's own speeds before the first), in both directions."""
    problems = []
    ordered = sorted(steps, key=lambda s: s.after_gb)
    seen = set()
    down, up = plan_download_kbps, plan_upload_kbps
    for number, step in enumerate(ordered, start=1):
        if step.after_gb in seen:
            problems.append(f"two steps start after {step.after_gb} GB")
            continue
        seen.add(step.after_gb)
        if (step.download_kbps is None) != (step.upload_kbps is None):
            problems.append(f"the step after {step.after_gb} GB needs both speeds, or neither")
        elif step.download_kbps is None:
            if number != len(ordered):
                problems.append(
                    f"the block after {step.after_gb} GB must be the last step: nothing "
                    "comes after blocked"
                )
        elif (
            step.download_kbps > down
            or step.upload_kbps > up
            or ((step.download_kbps, step.upload_kbps) == (down, up))
        ):
            problems.append(
                f"the step after {step.after_gb} GB must be slower than the speed before it"
            )
        else:
            down, up = step.download_kbps, step.upload_kbps
    return problems


class UsageMeter(models.Model):
    """One PPPoE account's meter: the router counters it last saw and the fair-usage
    level its router item should carry.

    `seen` is {session key: [bytes in, bytes out, start epoch]} (network.pppoe_usage
    says why a start): a poll counts each session's growth since then, so a counter that
    restarts (reconnection, reboot) loses nothing that was seen. `polled_at` refuses a
    reading older than the one already stored (two polls racing)."""

    service_account = models.OneToOneField(
        "subscribers.ServiceAccount", on_delete=models.CASCADE, related_name="usage_meter"
    )
    seen = models.JSONField(default=dict, blank=True)
    polled_at = models.DateTimeField(null=True, blank=True)
    # Changed only by network.fup.evaluate's conditional update, which queues the router
    # job in the same transaction; provisioning writes the profile this names.
    fup_level = models.CharField(max_length=10, choices=FupLevel.choices, default=FupLevel.FULL)
    # Which step of the plan's ladder (1 = the first; 0 at full speed): the profile
    # "<plan>-fup<n>" or "<plan>-capped" (network.provisioning.profile_for). Claimed
    # together with fup_level.
    fup_step = models.PositiveSmallIntegerField(default=0)
    fup_changed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            # The periodic evaluation looks at every account not at full speed.
            models.Index(
                fields=["fup_level"], name="usagemeter_limited", condition=~Q(fup_level="full")
            ),
        ]

    def __str__(self):
        return f"meter of {self.service_account_id}"


class UsagePeriod(models.Model):
    """Bytes one PPPoE account used in one usage period (network.fup.period_start):
    in = what the router received from the subscriber (upload), out = download."""

    service_account = models.ForeignKey(
        "subscribers.ServiceAccount", on_delete=models.CASCADE, related_name="usage_periods"
    )
    period_start = models.DateField()
    bytes_in = models.BigIntegerField(default=0)
    bytes_out = models.BigIntegerField(default=0)
    # 0, 80 or 100: the SMS already sent this period (claimed by a conditional update).
    warned_percent = models.PositiveSmallIntegerField(default=0)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-period_start"]
        constraints = [
            # A poll adds to the period's row with INSERT ... ON CONFLICT on this.
            models.UniqueConstraint(
                fields=["service_account", "period_start"], name="usage_period_once"
            ),
        ]

    def __str__(self):
        return f"{self.service_account_id} from {self.period_start}"

    @property
    def total(self) -> int:
        return self.bytes_in + self.bytes_out


class DataTopUp(models.Model):
    """Extra data for one account in one usage period (a staff action now; the portal
    and captive page can call network.fup.top_up later). Rows are never edited: the
    period's allowance is the plan's cap plus the sum of these."""

    service_account = models.ForeignKey(
        "subscribers.ServiceAccount", on_delete=models.CASCADE, related_name="data_top_ups"
    )
    period_start = models.DateField()
    gigabytes = models.PositiveIntegerField()
    created_by = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["service_account", "period_start"], name="topup_account_period")
        ]

    def __str__(self):
        return f"{self.gigabytes} GB for {self.service_account_id}"
