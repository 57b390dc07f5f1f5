"""Router import page: read a MikroTik, show what an import would do (plans to create,
with a price field each; profiles to map; every problem), then import it.

The router is read in the request: 1,000-5,000 items take about a second over the API,
and staff wait for the preview anyway. The page renders at most PREVIEW_ROWS rows.
"""

from django.contrib import messages
from django.shortcuts import render
from django.urls import path
from django.utils.text import capfirst

from ispops.staff.access import roles
from ispops.staff.models import Role
from network.router_import import import_router, parse_price, plan_import, read_router
from network.routeros import RouterError
from network.views import get_router_for
from subscribers.models import Plan

PREVIEW_ROWS = 200
PRICE_PREFIX = "price:"
MAP_PREFIX = "map:"


class ImportChoices:
    """Prices ("price:<plan>" fields) and profile mappings ("map:<service>:<profile>"
    fields, a plan id each) posted by the preview form."""

    def __init__(self, data=None):
        self.raw_prices: dict[str, str] = {}
        self.prices: dict = {}
        self.price_errors: dict[str, str] = {}
        self.mapping: dict = {}
        self.map_ids: dict[str, str] = {}
        if data is None:
            return
        for key, value in data.items():
            value = value.strip()
            if key.startswith(PRICE_PREFIX) and value:
                name = key[len(PRICE_PREFIX) :]
                self.raw_prices[name] = value
                try:
                    self.prices[name] = parse_price(value)
                except ValueError as exc:
                    self.price_errors[name] = str(exc)
            elif key.startswith(MAP_PREFIX) and value.isdigit():
                self.map_ids[key[len(MAP_PREFIX) :]] = value
        plans = Plan.objects.in_bulk([int(v) for v in self.map_ids.values()])
        for key, plan_id in self.map_ids.items():
            if int(plan_id) in plans:
                self.mapping[key] = plans[int(plan_id)]

    @property
    def ok(self) -> bool:
        return not self.price_errors


@roles(Role.OWNER, Role.ADMIN)
def router_import(request, pk):
    router = get_router_for(request, pk)
    choices = ImportChoices(request.POST if request.method == "POST" else None)
    result = None
    try:
        if request.method == "POST" and request.POST.get("action") == "import" and choices.ok:
            result = import_router(
                router, actor=request.user, prices=choices.prices, mapping=choices.mapping
            )
            if result.ok:
                return render(
                    request, "network/import/result.html", {"router": router, "result": result}
                )
            messages.error(request, f"{capfirst(result.summary())}.")
            preview = result.preview
        else:
            preview = plan_import(
                read_router(router), prices=choices.prices, mapping=choices.mapping
            )
    except RouterError as exc:
        # A page, not a gateway: the router's trouble is a message staff can act on.
        return render(request, "network/import/preview.html", {"router": router, "error": exc})
    if choices.price_errors:
        messages.error(request, "Some prices are not amounts; correct them and try again.")
    context = {
        "router": router,
        "preview": preview,
        "errors": result.errors if result else preview.errors,
        "rows": preview.rows[:PREVIEW_ROWS],
        "new_plans": [
            {
                "plan": new,
                "field": f"{PRICE_PREFIX}{new.name}",
                "value": choices.raw_prices.get(new.name, new.price if new.price else ""),
                "error": choices.price_errors.get(new.name, ""),
            }
            for new in preview.new_plans
        ],
        "unmapped": _mapping_fields(preview, choices),
    }
    return render(request, "network/import/preview.html", context)


def _mapping_fields(preview, choices) -> list[dict]:
    """A plan picker for each profile that cannot become a plan by itself, plus those
    staff already mapped (so the choice survives "Check again")."""
    profiles = [(u.service, u.profile, u.users, u.reason) for u in preview.unmapped] + [
        (r.service, r.profile, r.users, "")
        for r in preview.reused_plans
        if r.mapped and f"{r.service}:{r.profile}" in choices.map_ids
    ]
    if not profiles:
        return []
    plans = list(Plan.objects.filter(is_active=True).order_by("name"))
    return [
        {
            "field": f"{MAP_PREFIX}{service}:{profile}",
            "service": service,
            "profile": profile,
            "users": users,
            "reason": reason,
            "selected": choices.map_ids.get(f"{service}:{profile}", ""),
            "plans": [p for p in plans if p.service == service],
        }
        for service, profile, users, reason in profiles
    ]


urls = [
    path("routers/<int:pk>/import/", router_import, name="router_import"),
]
