"""Host routing: django-tenants' middleware with a short in-process cache of
host -> ISP, and ISPs that are not active (still provisioning, suspended) not served."""

import time

from django.http import Http404
from django_tenants.middleware.main import TenantMainMiddleware

from ispops.tenancy.models import Isp

# Host lookups cost a query (and a search_path switch) on every request; hosts change
# rarely, so a hit is reused for this long. An ISP's status change shows within it.
CACHE_SECONDS = 30
_cache: dict[str, tuple[float, Isp]] = {}


def forget_hosts() -> None:
    """Drop the cache (after changing domains or an ISP's status in this process)."""
    _cache.clear()


class IspRoutingMiddleware(TenantMainMiddleware):
    def get_tenant(self, domain_model, hostname):
        hit = _cache.get(hostname)
        now = time.monotonic()
        if hit and now - hit[0] < CACHE_SECONDS:
            tenant = hit[1]
        else:
            tenant = super().get_tenant(domain_model, hostname)
            _cache[hostname] = (now, tenant)
        if tenant.schema_name != "public" and tenant.status != Isp.Status.ACTIVE:
            raise Http404(f"{tenant.name} is not available")
        return tenant
