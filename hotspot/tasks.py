"""Celery wrappers for the hotspot app; each runs in the ISP's schema it was sent from."""

from celery import shared_task


@shared_task
def push_router(router_id: int) -> str:
    """Make the router's pending hotspot logins match their entitlements."""
    from hotspot import router

    return router.push(router_id)


@shared_task
def enforce_entitlements() -> dict:
    """Every 30 s: end entitlements past their end or at their data limit, then push
    every router with pending logins (those ends, and pushes a lost task left)."""
    from django.utils import timezone

    from hotspot import entitlements, router

    now = timezone.now()
    ended_on = entitlements.end_due(now) + entitlements.end_due_bypasses(now)
    pushed = {}
    for router_id in sorted(set(ended_on) | set(router.pending_routers(now))):
        pushed[router_id] = router.push(router_id)
    return {"ended_on": ended_on, "pushed": pushed}


@shared_task
def poll_hotspot_usage() -> int:
    """Every minute: count usage from the routers' counters, warn, end at the limit."""
    from hotspot import usage

    return usage.poll_all()


@shared_task
def sync_hotspot_routers() -> int:
    """Every 15 minutes: compare each hotspot router with ispops (profiles, walled
    garden, users) and write the differences."""
    from hotspot import router
    from network import routeros

    synced = 0
    for record in router.hotspot_routers():
        try:
            router.sync_router(record)
            synced += 1
        except (routeros.RouterError, router.NotApplied) as exc:
            router.log.info("hotspot sync of %s failed: %s", record, exc)
    return synced


@shared_task
def expire_unsold_vouchers() -> int:
    """Cards never sold past their batch's expiry become expired (hotspot.vouchers)."""
    from hotspot import vouchers

    return vouchers.expire_unsold()
