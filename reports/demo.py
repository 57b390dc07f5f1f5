"""Demo report history (seed_demo): the daily snapshots of every day since the demo's
first subscriber joined (taken now from the billing timeline that billing.demo wrote,
so marked estimated, as the nightly run marks days it missed), then the MRR movement
of the last 12 months and weeks worked out, as the nightly run leaves them. The MRR
report, the owner's home and their charts have months to show on the first start.
Safe to run again: days already taken are kept."""

from datetime import timedelta

from django.utils import timezone

from reports import movement, snapshots


def seed(out=None) -> None:
    say = out or (lambda text: None)
    now = timezone.now()
    yesterday = timezone.localdate(now) - timedelta(days=1)
    taken = snapshots.fill_missing(yesterday, as_of=now)
    if not taken:
        return
    movement.work_out_current(yesterday)
    say(f"  {len(taken)} days of snapshots (MRR KES {taken[-1].mrr:,.2f} yesterday)")
