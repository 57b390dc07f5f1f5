"""Demo monitoring history (seed_demo): a week of 5-minute points for each demo router
(CPU, memory, sessions online and uplink traffic, busier in the evening), as the
poller and downsampling would have left them, so the router charts are drawn on the
first start instead of after the first half hour of polls. Deterministic; only for
routers with no points yet."""

import math
import random
from datetime import timedelta

from django.utils import timezone

from network import monitoring
from network.models import InterfaceSample, Router, RouterSample
from subscribers.models import ServiceAccount

DAYS = 7
STEP = timedelta(minutes=5)
MEMORY = 1024 * 1024 * 1024


def seed(out=None) -> None:
    say = out or (lambda text: None)
    now = timezone.now()
    # On the bucket grid the downsampling uses, as points it folded would be.
    end = monitoring._floor(now - STEP, STEP)
    count = int(timedelta(days=DAYS) / STEP)
    made = 0
    for router in Router.objects.order_by("id"):
        if RouterSample.objects.filter(router=router).exists():
            continue
        rng = random.Random(router.name)
        live = ServiceAccount.objects.filter(router=router, status="active").count()
        rx_total = tx_total = 0
        health, traffic = [], []
        for n in range(count, 0, -1):
            at = end - STEP * n
            hour = timezone.localtime(at).hour + timezone.localtime(at).minute / 60
            # Busiest at 9 pm, quietest in the morning.
            load = 0.55 + 0.45 * math.cos((hour - 21) / 24 * 2 * math.pi)
            load *= rng.uniform(0.9, 1.1)
            online = round(live * (0.35 + 0.5 * load))
            rx_bps = int(online * 900_000 * load)
            tx_bps = int(rx_bps * rng.uniform(0.12, 0.2))
            rx_total += rx_bps * 300 // 8
            tx_total += tx_bps * 300 // 8
            health.append(
                RouterSample(
                    router=router,
                    at=at,
                    resolution=RouterSample.Resolution.FIVE_MIN,
                    cpu_load=min(95, int(8 + 45 * load)),
                    free_memory=int(MEMORY * rng.uniform(0.55, 0.65)),
                    total_memory=MEMORY,
                    uptime_seconds=int((at - (end - timedelta(days=DAYS + 3))).total_seconds()),
                    active_sessions=online,
                )
            )
            traffic.append(
                InterfaceSample(
                    router=router,
                    interface=router.uplink_interface,
                    at=at,
                    resolution=RouterSample.Resolution.FIVE_MIN,
                    rx_bytes=rx_total,
                    tx_bytes=tx_total,
                    rx_bps=rx_bps,
                    tx_bps=tx_bps,
                )
            )
        RouterSample.objects.bulk_create(health, batch_size=2000)
        InterfaceSample.objects.bulk_create(traffic, batch_size=2000)
        made += 1
    if made:
        say(f"  {DAYS} days of monitoring for {made} routers")
