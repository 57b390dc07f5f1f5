"""What a PPPoE account's data allowance looks like now, for people to read (the
portal's data page, the staff account page): the period, bytes used, the allowance with
this period's top-ups, and the fair-usage level. Read-only; the rules (the period, the
ladder, top-ups) are network.fup's, and nothing here decides a level."""

from dataclasses import dataclass
from datetime import date, datetime

from django.db.models import Sum

from network import fup
from network.models import DataTopUp, FupLevel, UsageMeter, UsagePeriod


@dataclass(frozen=True)
class Usage:
    period_start: date
    used: int  # bytes
    cap_gb: int
    topped_up_gb: int
    level: str

    @property
    def allowance(self) -> int:
        return (self.cap_gb + self.topped_up_gb) * fup.GB

    @property
    def used_gb(self) -> float:
        return self.used / fup.GB

    @property
    def allowance_gb(self) -> int:
        return self.cap_gb + self.topped_up_gb

    @property
    def left_gb(self) -> float:
        return max(self.allowance - self.used, 0) / fup.GB

    @property
    def percent(self) -> int:
        """0-100, for the bar (a used-up allowance shows full, not more)."""
        return min(100, self.used * 100 // self.allowance) if self.allowance else 100

    @property
    def limited(self) -> bool:
        return self.level != FupLevel.FULL

    @property
    def level_label(self) -> str:
        return FupLevel(self.level).label


def capped(account) -> bool:
    """A PPPoE account whose plan has a data cap: the only kind fair use applies to."""
    return account.service == "pppoe" and account.plan.data_cap_gb is not None


def usage_of(accounts, now: datetime) -> dict[int, Usage]:
    """{account id: Usage} for the capped ones of `accounts` (their plans selected),
    in three queries whatever their number."""
    accounts = [a for a in accounts if capped(a)]
    if not accounts:
        return {}
    periods = {a.pk: fup.period_start(a, now) for a in accounts}
    ids, starts = list(periods), set(periods.values())
    used = {
        (p.service_account_id, p.period_start): p.total
        for p in UsagePeriod.objects.filter(service_account_id__in=ids, period_start__in=starts)
    }
    extra = {
        (row["service_account_id"], row["period_start"]): row["gb"]
        for row in DataTopUp.objects.filter(service_account_id__in=ids, period_start__in=starts)
        .values("service_account_id", "period_start")
        .annotate(gb=Sum("gigabytes"))
        .order_by()
    }
    levels = dict(
        UsageMeter.objects.filter(service_account_id__in=ids).values_list(
            "service_account_id", "fup_level"
        )
    )
    out = {}
    for account in accounts:
        key = (account.pk, periods[account.pk])
        out[account.pk] = Usage(
            period_start=periods[account.pk],
            used=used.get(key, 0),
            cap_gb=account.plan.data_cap_gb,
            topped_up_gb=extra.get(key) or 0,
            level=levels.get(account.pk, FupLevel.FULL),
        )
    return out
