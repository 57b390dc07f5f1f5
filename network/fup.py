"""Fair use for PPPoE accounts (issue 14): what a plan's data allowance allows now, the
router profile that carries it, the SMS at 80 % and 100 %, and top-ups.

The ladder of a plan, from its fields (subscribers.Plan):

    used < allowance                     full speed (the plan's profile)
    used >= allowance, FUP speeds set    slowed: profile "<plan>-fup" at those speeds
    used >= allowance, no FUP speeds     blocked until a top-up: profile "<plan>-capped",
                                         walled in (network.provisioning.fup_profiles)

allowance = plan.data_cap_gb GB (decimal, 10^9 bytes) + the period's top-ups; a plan
without a cap is never limited.

The usage period is the plan's cycle on the calendar in Africa/Nairobi (a month from
the 1st, a week from Monday, a day), not the account's billing period: those start
whenever a prepaid term was bought or at the ISP's anchor day and live in billing, so
a poll every minute would have to read billing's terms for each account. A calendar
period is one known moment for everyone ("your monthly data"), computed from the plan
alone.

A level change is claimed by a conditional update of UsageMeter.fup_level and queues
a router job in the same transaction (provisioning writes the profile and drops the
live session, so the subscriber's device redials on the new profile). evaluate() runs
after every usage poll and from the beat every minute, so a new period or a top-up
restores full speed within 60 s.

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

import logging
from datetime import date, datetime, timedelta

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from ispops import audit
from network.models import DataTopUp, FupLevel, UsageMeter, UsagePeriod

log = logging.getLogger(__name__)

GB = 10**9
WARN_AT_PERCENT = 80
WARNING, USED_UP = "data_cap_warning", "data_cap_used_up"
ACTOR = "fair usage"


class TopUpError(ValueError):
    """A top-up that cannot be made; str() says why."""


def period_start(plan, moment: datetime) -> date:
    """The first day of the usage period `moment` falls in (see the module docstring)."""
    day = timezone.localdate(moment)
    if plan.cycle == "monthly":
        return day.replace(day=1)
    if plan.cycle == "weekly":
        return day - timedelta(days=day.weekday())
    return day


def level_for(plan, used: int, allowance: int | None) -> str:
    if allowance is None or used < allowance:
        return FupLevel.FULL
    return FupLevel.THROTTLED if plan.fup_download_kbps else FupLevel.BLOCKED


def _allowances(accounts, now) -> dict[int, tuple[date, int, int | None, UsagePeriod | None]]:
    """{account id: (period, used, allowance or None, its UsagePeriod)} in two queries."""
    periods = {a.pk: period_start(a.plan, now) for a in accounts}
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
        cap = account.plan.data_cap_gb
        allowance = None if cap is None else (cap + (extra.get(key) or 0)) * GB
        out[account.pk] = (periods[account.pk], row.total if row else 0, allowance, row)
    return out


def evaluate(account_ids, *, now: datetime | None = None) -> int:
    """Set each account's level from its usage, queue the router job where it changed
    and send the 80 % / 100 % SMS once a period. `account_ids` None: every account not
    at full speed (a new period or a top-up restores them). Returns the level changes."""
    from network import jobs

    now = now or timezone.now()
    meters = UsageMeter.objects.select_related("service_account__plan", "service_account__customer")
    if account_ids is None:
        meters = meters.exclude(fup_level=FupLevel.FULL)
    else:
        meters = meters.filter(service_account_id__in=list(account_ids))
    meters = list(meters)
    if not meters:
        return 0
    figures = _allowances([m.service_account for m in meters], now)
    changed = 0
    for meter in meters:
        account = meter.service_account
        _, used, allowance, row = figures[account.pk]
        wanted = level_for(account.plan, used, allowance)
        warn = row is not None and allowance and _percent(used, allowance) > row.warned_percent
        if wanted == meter.fup_level and not warn:
            continue  # most accounts, most minutes: no statement at all
        with transaction.atomic():
            if wanted != meter.fup_level:
                claimed = UsageMeter.objects.filter(pk=meter.pk, fup_level=meter.fup_level).update(
                    fup_level=wanted, fup_changed_at=now
                )
                if claimed:
                    log.info("account %s: fair usage %s -> %s", account.pk, meter.fup_level, wanted)
                    jobs.queue_account(account, actor=ACTOR)
                    changed += 1
            if warn:
                _warn(account, row, used, allowance)
    return changed


def _percent(used: int, allowance: int) -> int:
    """The warning level reached: 100, WARN_AT_PERCENT or 0."""
    if used >= allowance:
        return 100
    return WARN_AT_PERCENT if used * 100 >= allowance * WARN_AT_PERCENT else 0


def _warn(account, row: UsagePeriod, used: int, allowance: int) -> None:
    """SMS at WARN_AT_PERCENT and at 100 %, each once a period (claimed by a conditional
    update of warned_percent; a second poll sends nothing)."""
    from ispops.messaging import services as messaging

    percent = _percent(used, allowance)
    claimed = UsagePeriod.objects.filter(pk=row.pk, warned_percent__lt=percent).update(
        warned_percent=percent
    )
    if not claimed:
        return
    plan = account.plan
    messaging.notify(
        account.customer,
        USED_UP if percent >= 100 else WARNING,
        {
            "plan": plan.name,
            "percent": percent,
            "left": f"{max(allowance - used, 0) / GB:.1f} GB",
            "slowed": bool(plan.fup_download_kbps),
            "fup_speed": _speed(plan.fup_download_kbps or 0),
        },
        related=f"usage:{account.pk}:{row.period_start:%Y-%m-%d}",
    )


def _speed(kbps: int) -> str:
    """1500 -> '1.5 Mbit/s', 512 -> '512 kbit/s' (the SMS's words)."""
    return f"{kbps / 1000:g} Mbit/s" if kbps >= 1000 else f"{kbps} kbit/s"


def top_up(account, gigabytes: int, *, actor, now: datetime | None = None) -> DataTopUp:
    """Add data to the account's current period; full speed comes back once the
    transaction commits (evaluate, then the router job), or at the next beat."""
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
            period_start=period_start(account.plan, now),
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
    cached = getattr(account, "_fup_level", None)
    if cached is not None:
        return cached
    level = (
        UsageMeter.objects.filter(service_account_id=account.pk)
        .values_list("fup_level", flat=True)
        .first()
    )
    account._fup_level = level or FupLevel.FULL
    return account._fup_level
