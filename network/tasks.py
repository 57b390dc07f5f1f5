"""Celery wrappers for the network app; each runs in the ISP's schema it was sent from.
Router connections opened by run_router_jobs stay open in the worker process between
tasks (network.routeros.pooled) and are closed when the process shuts down."""

from celery import shared_task
from celery.signals import worker_process_shutdown

from network import monitoring, routeros, services


@shared_task
def run_router_jobs(router_id: int) -> str:
    """Apply the due jobs of one router over one connection."""
    return services.run_jobs(router_id)


@shared_task
def sweep_router_jobs() -> int:
    """Re-queue jobs whose task was lost (Redis restarted, worker killed)."""
    return services.sweep_jobs()


@shared_task
def check_drift_all() -> int:
    """Compare every router with the database (the periodic drift check)."""
    return services.check_drift_all()


@shared_task
def poll_routers() -> int:
    """Poll every router's health, traffic and sessions; raise or resolve alerts."""
    return monitoring.poll_all_routers()


@shared_task
def downsample_samples() -> int:
    """Fold old raw monitoring points into 5-minute and hourly ones."""
    return monitoring.downsample()


@shared_task
def poll_pppoe_usage() -> int:
    """Every minute: count PPPoE usage from the session counters, then fair use (the
    slower or capped profile, SMS at 80 % and 100 %, full speed back at a new period or
    after a top-up)."""
    from network import pppoe_usage

    return pppoe_usage.poll_all()


@shared_task
def fix_drift(router_id: int, actor_label: str) -> int:
    from network.models import Router

    router = Router.objects.filter(pk=router_id).first()
    return services.fix_drift(router, actor=actor_label) if router else 0


@worker_process_shutdown.connect
def _close_router_connections(**_):
    """A worker process going away says goodbye to the routers it kept connections to."""
    routeros.close_pool()
