"""What reports keep: the daily subscription snapshot (immutable history, one row per
recurring service per day) and the ISP's report rules.

A snapshot row records a service account as it stood on a day: its normalised monthly
recurring revenue (reports.snapshots owns that rule), plan, site, branch, router and
status. The ids are kept without foreign-key constraints: history outlives a deleted
plan or router and must never block one, and a day of 100,000 rows is written with
one COPY-like bulk insert. A day taken from the timeline after the fact (the beat was
down) is marked estimated, as is each of its rows.
"""

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from ispops.lib.settingsrow import SettingsRow


class ReportSettings(SettingsRow):
    """The ISP's rules for churn and reactivation (MRR movement)."""

    churn_after_days = models.PositiveSmallIntegerField(
        "churned after suspended for (days)",
        default=30,
        validators=[MinValueValidator(1), MaxValueValidator(365)],
        help_text="A service suspended this long counts as churned; terminated counts at once.",
    )
    reactivation_days = models.PositiveSmallIntegerField(
        "back within (days) is a reactivation",
        default=90,
        validators=[MinValueValidator(1), MaxValueValidator(3650)],
        help_text="A churned customer who pays again within this many days is a "
        "reactivation; later, a new customer.",
    )

    class Meta:
        verbose_name_plural = "report settings"

    def __str__(self):
        return "Report settings"


class SnapshotDay(models.Model):
    """One day's snapshot as a whole: taken once, never changed."""

    day = models.DateField(unique=True)
    estimated = models.BooleanField(default=False)
    services = models.PositiveIntegerField(default=0)
    mrr = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    # The day's MRR by branch ({"<branch id>": "<mrr>"}; customers with no branch are in
    # `mrr` only): a branch-limited home reads it instead of the day's rows.
    by_branch = models.JSONField(default=dict)
    taken_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-day"]

    def __str__(self):
        return f"snapshot {self.day}{' (estimated)' if self.estimated else ''}"


class Snapshot(models.Model):
    """A recurring service on a day (see the module docstring)."""

    day = models.DateField()
    service_account = models.ForeignKey(
        "subscribers.ServiceAccount",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    customer = models.ForeignKey(
        "subscribers.Customer",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    plan = models.ForeignKey(
        "subscribers.Plan",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    site = models.ForeignKey(
        "subscribers.NetworkSite",
        null=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    branch = models.ForeignKey(
        "staff.Branch",
        null=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    router = models.ForeignKey(
        "network.Router",
        null=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    status = models.CharField(max_length=12)
    # The first day of the stretch of suspension the service is in (None when not
    # suspended): the churn rule counts from it.
    suspended_since = models.DateField(null=True)
    # Monthly recurring revenue, VAT excluded, discounts applied (reports.snapshots).
    mrr = models.DecimalField(max_digits=12, decimal_places=2)
    estimated = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["day", "service_account"], name="snapshot_once")
        ]
        # A day's rows are read by snapshot_once (day first), a customer's past days
        # (the reactivation look-back) by snapshot_customer_day: nothing else, so no
        # other index is kept up on 100,000 rows a day.
        indexes = [models.Index(fields=["customer", "day"], name="snapshot_customer_day")]

    def __str__(self):
        return f"{self.service_account_id} on {self.day}: {self.mrr}"


class MovementFigures(models.Model):
    """One period's MRR movement for one scope, kept once worked out (reports.movement).

    The figures read only snapshot rows, which never change, from `reads_from` (the
    reactivation look-back) to `end_day`, under the rules in the row: so they are
    history too. A day taken later inside that range (fill_missing) deletes the rows
    that read it (reports.snapshots); a change of rules finds no row and works the
    figures out again. scope 0 is the whole ISP, else a branch id (or the marker -1)."""

    WHOLE_ISP = 0
    # A marker row (zeros): every branch's rows of the period are kept, so a branch
    # with none had no MRR in it.
    EVERY_BRANCH = -1

    kind = models.CharField(max_length=5)
    period = models.CharField(max_length=8)
    end_day = models.DateField()
    scope = models.BigIntegerField()
    churn_after_days = models.PositiveSmallIntegerField()
    reactivation_days = models.PositiveSmallIntegerField()
    reads_from = models.DateField()
    start = models.DecimalField(max_digits=14, decimal_places=2)
    new = models.DecimalField(max_digits=14, decimal_places=2)
    expansion = models.DecimalField(max_digits=14, decimal_places=2)
    contraction = models.DecimalField(max_digits=14, decimal_places=2)
    churn = models.DecimalField(max_digits=14, decimal_places=2)
    reactivation = models.DecimalField(max_digits=14, decimal_places=2)
    end = models.DecimalField(max_digits=14, decimal_places=2)
    # Customers behind each figure, and paying customers at the start and the end.
    counts = models.JSONField()
    customers_start = models.PositiveIntegerField()
    customers_end = models.PositiveIntegerField()
    worked_out_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "period", "end_day", "scope", "churn_after_days",
                        "reactivation_days"],
                name="movement_figures_once",
            )
        ]  # fmt: skip
        indexes = [models.Index(fields=["reads_from", "end_day"], name="movement_reads")]

    def __str__(self):
        return f"movement {self.period} to {self.end_day} (scope {self.scope})"


class BucketClaim(models.Model):
    """A bucket action (a payment reminder, an STK prompt) taken for one customer on one
    day (reports.aging.act_on_bucket): claimed before anything is sent, so a second click
    or a retried task that day sends nothing new."""

    class Action(models.TextChoices):
        REMINDER = "reminder", "Payment reminder"
        STK = "stk", "STK prompt"

    customer = models.ForeignKey(
        "subscribers.Customer", on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    action = models.CharField(max_length=8, choices=Action.choices)
    on_date = models.DateField()
    bucket = models.CharField(max_length=8)
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    by = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "action", "on_date"], name="bucket_action_once_a_day"
            )
        ]

    def __str__(self):
        return f"{self.get_action_display()} to {self.customer_id} on {self.on_date}"
