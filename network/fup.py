"""Fair use for PPPoE accounts (issue 14): a plan's fair-usage ladder, the step an
account is on now, the router profile that carries it, the SMS at 80 % and 100 %,
top-ups, and the usage period they all count in.

The ladder. A plan with a data cap (subscribers.Plan.data_cap_gb, "the allowance" shown
to subscribers) has steps (network.models.FupStep), e.g.

    after  50 GB   10M down / 5M up      profile "<plan>-fup1"
    after  80 GB    2M down / 1M up      profile "<plan>-fup2"
    after 100 GB   blocked until top-up  profile "<plan>-capped", walled in

A plan without FupStep rows has the one step of its own fields, as before the ladder:
after data_cap_gb GB at the FUP speeds (profile "<plan>-fup"), or blocked when it has
none. Those fields stay the one-step ladder rather than being migrated into rows
because the plan form still edits them: rows copied from them once would silently stop
following the form. A plan without a cap is never limited (its steps are ignored).
check_ladder and save_ladder refuse a ladder that does not slow down step by step, a
block that is not last, and a first step beyond the cap (at 100 % the SMS tells the
speed in force, so something must be).

The step in force is the highest one whose threshold the period's usage reached, so a
poll that sees two thresholds crossed lands on the second directly.

Top-ups are allowance-relative: a top-up of T GB in a period raises the allowance and
every threshold of that period by T GB (step n applies from after_gb(n) + T). Someone
slowed at step 2 who buys the gap back is at step 1 again, or at full speed when the
top-up covers the first threshold, at the evaluate that follows the purchase.

The usage period (usage_period, the one home of this rule; network.pppoe_usage counts
bytes into it and the allowance, the top-ups and the SMS are per period):
- a prepaid account with an expiry: the term it paid for that contains `now`, derived
  from expires_at and the plan's cycle (a term is one cycle long and ends at the
  expiry, earlier terms one cycle before each other; monthly terms keep the expiry's
  day of the month). Bought on the 15th for a month, the allowance runs 15th to 15th;
  a calendar reset on the 1st would give a second allowance nobody paid for. After the
  expiry (grace, suspension) the last term goes on, so no new allowance comes before
  a payment; a renewal moves expires_at and so starts the next period, and the beat's
  evaluate (every minute) restores full speed within 60 s. The period is read from the
  account's own row, which every caller already has in hand (no query of billing, and
  network may not import billing); the cost is that a part term (bought with a
  remainder of credit) is taken as a whole one: its period starts a cycle before its
  end, which only moves the label of the period, not when it resets.
- postpaid accounts, prepaid ones without an expiry, and hourly plans: the plan's cycle
  on the calendar in Africa/Nairobi (a month from the 1st, a week from Monday, a day).
  A postpaid account's billing anchor (activation day or the ISP's fixed day) lives in
  billing's settings and timeline; "your monthly data" from the 1st is one known moment
  for all of them, and nothing is given free since the bill covers the whole month.
  Hourly terms would need a period per hour that a date cannot name.
Periods are named by their first local day (UsagePeriod.period_start); two terms of a
daily or longer cycle never start on the same day, so names never collide.

A level change is claimed by a conditional update of UsageMeter (fup_level, fup_step)
and queues one router job in the same transaction (provisioning writes the profile and
drops the live session, so the subscriber's device redials on the new profile).
evaluate() runs after every usage poll and from the beat every minute, so a new period,
a renewal or a top-up restores full speed within 60 s.

Router-side guard (what holds while ispops is down). The level is router state: the
secret names the slower or capped profile, so a limited account stays limited through
reboots, reconnections and an ispops outage. Crossing the cap while ispops is away is
not guarded, and no honest cheap guard exists without RADIUS:
- /ppp/secret limit-bytes-in/out are per session (copied to /ppp/active at connect, the
  session cut when reached): a redial gets the whole amount again, so writing the
  remaining allowance there caps nothing over a period, and costs a secret write per
  account as usage moves.
- The dynamic `<pppoe-NAME>` queue and interface restart their counters at every
  reconnection, and a static queue per subscriber needs a fixed address.
- A scheduler script adding session counters into a file per login and switching the
  profile would run on the router, but loses the bytes of sessions that end between
  runs (on-down gets no byte counters for PPP) and is not something the emulator can
  show working.
RADIUS (Mikrotik-Total-Limit per session with a period counter, shared/hotspot.md D.2)
is the guard that holds; until then the poll's minute is the window.
"""

import calendar
import logging
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.contrib.postgres.expressions import ArraySubquery
from django.db import transaction
from django.db.models import OuterRef, Sum
from django.db.models.functions import JSONObject
from django.utils import timezone

from ispops import audit
from network.models import (
    DataTopUp,
    FupLevel,
    FupStep,
    UsageMeter,
    UsagePeriod,
    check_ladder,
)

log = logging.getLogger(__name__)

GB = 10**9
WARN_AT_PERCENT = 80
WARNING, USED_UP = "data_cap_warning", "data_cap_used_up"
ACTOR = "fair usage"
# Profile names (network.provisioning writes them): "<plan>-fup<n>" for slowed step n
# of a ladder, "<plan>-fup" for the one step of a plan's own fields (the name routers
# in service already carry), "<plan>-capped" for a block.
FUP_SUFFIX, CAPPED_SUFFIX = "-fup", "-capped"


class TopUpError(ValueError):
    """A top-up that cannot be made; str() says why."""


class LadderError(ValueError):
    """A ladder that cannot be saved; .problems says why, one line each."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


# --- the usage period -----------------------------------------------------------------


def usage_period(account, moment: datetime) -> tuple[date, datetime]:
    """(the period's name: its first local day, the moment it began) for the period
    `moment` falls in (see the module docstring). Reads only the account's row and its
    plan: `billing`, `cycle`, `expires_at`."""
    plan = account.plan
    expiry = account.expires_at
    if plan.billing == "prepaid" and expiry is not None and plan.cycle != "hourly":
        began = _term_start(plan.cycle, expiry, moment)
        return timezone.localdate(began), began
    day = timezone.localdate(moment)
    if plan.cycle == "monthly":
        day = day.replace(day=1)
    elif plan.cycle == "weekly":
        day -= timedelta(days=day.weekday())
    return day, timezone.make_aware(datetime.combine(day, time.min))


def period_start(account, moment: datetime) -> date:
    """The name (first local day) of the usage period `moment` falls in."""
    return usage_period(account, moment)[0]


def _term_start(cycle: str, expiry: datetime, moment: datetime) -> datetime:
    """The start of the prepaid term containing `moment` when terms of `cycle` end at
    `expiry`; the last term when `moment` is at or after the expiry."""
    if cycle in ("daily", "weekly"):
        length = timedelta(days=1 if cycle == "daily" else 7)
        terms_back = max(1, -((moment - expiry) // length))
        return expiry - terms_back * length
    local_end = timezone.localtime(expiry)
    local_now = timezone.localtime(moment)
    months = (local_end.year - local_now.year) * 12 + local_end.month - local_now.month
    back = max(1, months - 1)
    while True:  # at most three turns: `back` starts a month short of the answer
        start = _months_before(local_end, back)
        if start <= moment:
            return start
        back += 1


def _months_before(moment: datetime, months: int) -> datetime:
    """`moment` moved back whole months, keeping its day where the month has it (the
    day of a prepaid chain) and the month's last day where not."""
    index = moment.month - 1 - months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


# --- the ladder -----------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    number: int  # 1 = the first step
    after_gb: int
    download_kbps: int | None  # None: blocked until a top-up
    upload_kbps: int | None
    profile: str

    @property
    def blocks(self) -> bool:
        return self.download_kbps is None

    @property
    def level(self) -> str:
        return FupLevel.BLOCKED if self.blocks else FupLevel.THROTTLED


def ladder(plan, rows=None) -> list[Step]:
    """The plan's steps, first first; [] for a plan without a cap. `rows`: its FupStep
    rows when the caller read them (else plan.fup_steps.all(), prefetched or one query)."""
    if plan.data_cap_gb is None:
        return []
    rows = sorted(plan.fup_steps.all() if rows is None else rows, key=lambda r: r.after_gb)
    if not rows:  # the plan's own fields: one step at the cap
        down = plan.fup_download_kbps
        up = (plan.fup_upload_kbps or down) if down else None
        name = plan.name + (FUP_SUFFIX if down else CAPPED_SUFFIX)
        return [Step(1, plan.data_cap_gb, down, up, name)]
    return [
        Step(
            number,
            row.after_gb,
            row.download_kbps,
            row.upload_kbps,
            plan.name + (CAPPED_SUFFIX if row.blocks else f"{FUP_SUFFIX}{number}"),
        )
        for number, row in enumerate(rows, start=1)
    ]


def step_for(steps: list[Step], used: int, topped_up_gb: int = 0) -> int:
    """The number of the step in force (0: full speed): the highest whose threshold,
    raised by the period's top-ups, `used` bytes reached."""
    number = 0
    for step in steps:
        if used >= (step.after_gb + topped_up_gb) * GB:
            number = step.number
    return number


def level_for(steps: list[Step], number: int) -> str:
    return FupLevel.FULL if number == 0 else steps[number - 1].level


def save_ladder(plan, steps, *, actor, now: datetime | None = None) -> list[FupStep]:
    """Replace the plan's ladder with `steps` ([(after GB, download kbps or None, upload
    kbps or None)]; [] goes back to the plan's own fields). Refused whole (LadderError)
    when unsound; once committed, accounts whose step changes get their router job
    (evaluate) and accounts staying on a step get theirs too, so the step's profile
    carries its new speeds on their router (a live session keeps the old speed until it
    redials: RouterOS applies a profile at connection)."""
    rows = [FupStep(plan=plan, after_gb=a, download_kbps=d, upload_kbps=u) for a, d, u in steps]
    problems = check_ladder(
        rows, plan_download_kbps=plan.download_kbps, plan_upload_kbps=plan.upload_kbps
    )
    if rows and plan.data_cap_gb is None:
        problems.insert(0, f"the plan {plan} has no data cap: give it one first")
    elif rows and min(r.after_gb for r in rows) > plan.data_cap_gb:
        problems.append(
            f"the first step must start at or before the data cap ({plan.data_cap_gb} GB): "
            "at 100 % the subscriber is told the speed in force"
        )
    if problems:
        raise LadderError(problems)
    now = now or timezone.now()
    with transaction.atomic():
        before = _describe(ladder(plan, list(FupStep.objects.filter(plan=plan))))
        FupStep.objects.filter(plan=plan).delete()
        created = FupStep.objects.bulk_create(sorted(rows, key=lambda r: r.after_gb))
        after = _describe(ladder(plan, created))
        if before != after:
            audit.record(plan, "update", {"fair_use_ladder": [before, after]}, actor=actor)
            transaction.on_commit(lambda: _ladder_changed(plan.pk, now))
    return created


def _describe(steps: list[Step]) -> str:
    return "; ".join(
        f"after {s.after_gb} GB "
        + ("blocked" if s.blocks else f"{_speed(s.download_kbps)} down, {_speed(s.upload_kbps)} up")
        for s in steps
    )


def _ladder_changed(plan_id: int, now: datetime) -> None:
    from network import jobs

    meters = UsageMeter.objects.filter(service_account__plan_id=plan_id).exclude(
        service_account__status="terminated"
    )
    moved = set(_evaluate(list(meters.values_list("service_account_id", flat=True)), now))
    staying = [
        m.service_account
        for m in meters.exclude(fup_step=0).select_related("service_account")
        if m.service_account_id not in moved
    ]
    with transaction.atomic():
        jobs.queue_accounts(staying, actor=ACTOR)


# --- levels ---------------------------------------------------------------------------


def _allowances(accounts, now) -> dict[int, tuple[date, int, int, UsagePeriod | None]]:
    """{account id: (period, bytes used, GB topped up, its UsagePeriod)} in two queries."""
    periods = {a.pk: period_start(a, now) for a in accounts}
    ids = list(periods)
    used = {
        (p.service_account_id, p.period_start): p
        for p in UsagePeriod.objects.filter(
            service_account_id__in=ids, period_start__in=set(periods.values())
        )
    }
    extra = {
        (row["service_account_id"], row["period_start"]): row["gb"]
        for row in DataTopUp.objects.filter(
            service_account_id__in=ids, period_start__in=set(periods.values())
        )
        .values("service_account_id", "period_start")
        .annotate(gb=Sum("gigabytes"))
    }
    out = {}
    for account in accounts:
        key = (account.pk, periods[account.pk])
        row = used.get(key)
        out[account.pk] = (periods[account.pk], row.total if row else 0, extra.get(key) or 0, row)
    return out


def evaluate(account_ids, *, now: datetime | None = None) -> int:
    """Set each account's step from its usage, queue the router job where it changed
    and send the 80 % / 100 % SMS once a period. `account_ids` None: every account not
    at full speed (a new period, a renewal or a top-up restores them). Returns the
    number of step changes. Three queries for any number of accounts with nothing to
    change, the plans' ladders included (tests/network/test_fup_ladder.py pins it)."""
    return len(_evaluate(account_ids, now or timezone.now()))


def _evaluate(account_ids, now: datetime) -> list[int]:
    from network import jobs

    # The plans' ladders come in the same query (an array per row), not one more.
    steps = FupStep.objects.filter(plan_id=OuterRef("service_account__plan_id"))
    meters = UsageMeter.objects.select_related(
        "service_account__plan", "service_account__customer"
    ).annotate(
        ladder_rows=ArraySubquery(
            steps.order_by("after_gb").values(
                row=JSONObject(
                    after_gb="after_gb", download_kbps="download_kbps", upload_kbps="upload_kbps"
                )
            )
        )
    )
    if account_ids is None:
        meters = meters.exclude(fup_level=FupLevel.FULL)
    else:
        meters = meters.filter(service_account_id__in=list(account_ids))
    meters = list(meters)
    if not meters:
        return []
    figures = _allowances([m.service_account for m in meters], now)
    changed = []
    for meter in meters:
        account = meter.service_account
        _, used, topped_up, row = figures[account.pk]
        steps = ladder(account.plan, [FupStep(**row) for row in meter.ladder_rows])
        number = step_for(steps, used, topped_up)
        wanted = level_for(steps, number)
        cap = account.plan.data_cap_gb
        allowance = None if cap is None else (cap + topped_up) * GB
        warn = row is not None and allowance and _percent(used, allowance) > row.warned_percent
        moved = (wanted, number) != (meter.fup_level, meter.fup_step)
        if not moved and not warn:
            continue  # most accounts, most minutes: no statement at all
        with transaction.atomic():
            if moved:
                claimed = UsageMeter.objects.filter(
                    pk=meter.pk, fup_level=meter.fup_level, fup_step=meter.fup_step
                ).update(fup_level=wanted, fup_step=number, fup_changed_at=now)
                if claimed:
                    log.info(
                        "account %s: fair usage step %s -> %s (%s)",
                        account.pk,
                        meter.fup_step,
                        number,
                        wanted,
                    )
                    jobs.queue_account(account, actor=ACTOR)
                    changed.append(account.pk)
            if warn:
                _warn(account, row, used, allowance, steps[number - 1] if number else None)
    return changed


def _percent(used: int, allowance: int) -> int:
    """The warning level reached: 100, WARN_AT_PERCENT or 0."""
    if used >= allowance:
        return 100
    return WARN_AT_PERCENT if used * 100 >= allowance * WARN_AT_PERCENT else 0


def _warn(account, row: UsagePeriod, used: int, allowance: int, step: Step | None) -> None:
    """SMS at WARN_AT_PERCENT and at 100 %, each once a period (claimed by a conditional
    update of warned_percent; a second poll sends nothing). The used-up SMS tells the
    speed of the step in force."""
    from ispops.messaging import services as messaging

    percent = _percent(used, allowance)
    claimed = UsagePeriod.objects.filter(pk=row.pk, warned_percent__lt=percent).update(
        warned_percent=percent
    )
    if not claimed:
        return
    plan = account.plan
    slowed_kbps = plan.download_kbps if step is None else (step.download_kbps or 0)
    messaging.notify(
        account.customer,
        USED_UP if percent >= 100 else WARNING,
        {
            "plan": plan.name,
            "percent": percent,
            "left": f"{max(allowance - used, 0) / GB:.1f} GB",
            "slowed": step is None or not step.blocks,
            "fup_speed": _speed(slowed_kbps),
        },
        related=f"usage:{account.pk}:{row.period_start:%Y-%m-%d}",
    )


def _speed(kbps: int) -> str:
    """1500 -> '1.5 Mbit/s', 512 -> '512 kbit/s' (the SMS's words)."""
    return f"{kbps / 1000:g} Mbit/s" if kbps >= 1000 else f"{kbps} kbit/s"


def top_up(account, gigabytes: int, *, actor, now: datetime | None = None) -> DataTopUp:
    """Add data to the account's current period (raising its allowance and every step
    of its ladder by as much); full speed comes back once the transaction commits
    (evaluate, then the router job), or at the next beat."""
    from subscribers.models import ServiceType

    if account.service != ServiceType.PPPOE:
        raise TopUpError("top-ups are for PPPoE accounts")
    if account.plan.data_cap_gb is None:
        raise TopUpError(f"the plan {account.plan} has no data cap")
    if not isinstance(gigabytes, int) or gigabytes < 1:
        raise TopUpError("a top-up is a whole number of GB, at least 1")
    now = now or timezone.now()
    _, label = audit.describe_actor(actor)
    with transaction.atomic():
        row = DataTopUp.objects.create(
            service_account=account,
            period_start=period_start(account, now),
            gigabytes=gigabytes,
            created_by=label[:200],
            created_at=now,
        )
        UsageMeter.objects.get_or_create(service_account=account)
        audit.record(account, "update", {"data_top_up_gb": [None, gigabytes]}, actor=actor)
        transaction.on_commit(lambda: evaluate([account.pk], now=now))
    return row


def level_of(account) -> str:
    """The account's level (one query unless provisioning.annotate_levels set it)."""
    return _state(account)[0]


def step_of(account) -> int:
    """The number of the account's ladder step (0: full speed), as level_of."""
    return _state(account)[1]


def _state(account) -> tuple[str, int]:
    cached = getattr(account, "_fup_level", None)
    if cached is not None:
        return cached, getattr(account, "_fup_step", 0)
    found = (
        UsageMeter.objects.filter(service_account_id=account.pk)
        .values_list("fup_level", "fup_step")
        .first()
    )
    account._fup_level, account._fup_step = found or (FupLevel.FULL, 0)
    return account._fup_level, account._fup_step
