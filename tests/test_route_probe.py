"""Every route the project registers, probed as every role (issue 12, acceptance).

The routes are discovered from the URL resolvers, so a new view is probed without
editing this file. Each route is requested with GET and with an empty POST by
anonymous visitors and by staff of every role, with and without a branch limit, with
its parameters filled by an object of the user's own branch, of another branch and of
another ISP. No response may be a 500, and none may contain the marker names of
another ISP's rows, or for branch-limited staff of another branch's rows.

Parameters are filled by PARAM_FACTORIES, keyed by the parameter's name or, failing
that, by its converter's name (never by route): a route with a parameter neither
names fails with a message saying how to add one.
"""

import base64
from dataclasses import dataclass

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django_tenants.utils import tenant_context

from ispops.staff.access import LOGGED_IN, PLATFORM, PUBLIC, SUBSCRIBER, declared_roles
from ispops.staff.models import Role, User
from tests.probe_world import (
    MARK_OTHER_BRANCH,
    MARK_OTHER_ISP,
    OTHER_BRANCH,
    OTHER_ISP,
    OWN,
    build_set,
    limited_user,
)

TENANT_URLCONF = settings.ROOT_URLCONF
PUBLIC_URLCONF = settings.PUBLIC_SCHEMA_URLCONF
VARIANTS = ("own", "other_branch", "other_isp")

# Cases known to fail: the route (as in the test id) -> the reason, for a finding being
# fixed. Empty: every route holds. An entry makes its case an expected failure.
KNOWN_FAILURES: dict[str, str] = {}


@dataclass
class Route:
    urlconf: str
    route: str  # e.g. "billing/runs/<int:pk>/"
    converters: dict  # parameter name -> converter instance
    view: object

    @property
    def id(self) -> str:
        return f"{'public' if self.urlconf == PUBLIC_URLCONF else 'tenant'}:{self.route}"


def discover(urlconf: str) -> list[Route]:
    def walk(patterns, prefix, converters):
        for pattern in patterns:
            found = {**converters, **getattr(pattern.pattern, "converters", {})}
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern), found)
            elif isinstance(pattern, URLPattern):
                yield Route(urlconf, prefix + str(pattern.pattern), found, pattern.callback)

    return list(walk(get_resolver(urlconf).url_patterns, "", {}))


ROUTES = discover(TENANT_URLCONF) + discover(PUBLIC_URLCONF)


# --- parameter factories: (variant, world) -> the value in the path --------------------


def _by_variant(own, other_branch, other_isp):
    return lambda variant, world: {
        "own": own,
        "other_branch": other_branch,
        "other_isp": other_isp,
    }[variant](world)


def _template_key(variant, world):
    from ispops.messaging.services import DEFAULT_TEMPLATES

    return next(iter(DEFAULT_TEMPLATES))


def _document_token(schema: str) -> str:
    """A signed link to invoice OWN of `schema` (billing.links): alpha's opens on
    alpha's host, beta's must not."""
    from django.utils import timezone

    from billing.links import INVOICE, make_token

    return make_token(INVOICE, OWN, at=timezone.now(), schema=schema)


PARAM_FACTORIES = {
    # Converters: every row of a probe set has the same id (tests/probe_world.py).
    "int": _by_variant(lambda w: OWN, lambda w: OTHER_BRANCH, lambda w: OTHER_ISP),
    # Names.
    "token": _by_variant(
        lambda w: w.tokens["alpha"], lambda w: w.tokens["alpha"], lambda w: w.tokens["beta"]
    ),
    "uidb64": _by_variant(
        lambda w: w.uids["own"], lambda w: w.uids["other_branch"], lambda w: w.uids["other_isp"]
    ),
    "public_id": _by_variant(
        lambda w: w.public_ids["own"],
        lambda w: w.public_ids["other_branch"],
        lambda w: w.public_ids["other_isp"],
    ),
    "signed": _by_variant(
        lambda w: _document_token("alpha"),
        lambda w: _document_token("alpha"),
        lambda w: _document_token("beta"),
    ),
    "key": _template_key,
    "channel": lambda variant, world: "sms",
    # MRR drill-down (reports.views_mrr): a month and a figure; rows are branch-filtered.
    "period": lambda variant, world: "2026-05",
    "event": lambda variant, world: "churn",
    # A bulk action's job (subscribers.views.bulk): kept in Redis, per user; none here.
    "job_id": lambda variant, world: "0" * 32,
}


def converter_name(converter) -> str:
    from django.urls.converters import get_converters

    for name, registered in get_converters().items():
        if type(registered) is type(converter):
            return name
    return type(converter).__name__


def factory_for(name: str, converter):
    return PARAM_FACTORIES.get(name) or PARAM_FACTORIES.get(converter_name(converter))


def fill(route: Route, variant: str, world) -> str:
    path = route.route
    for name, converter in route.converters.items():
        factory = factory_for(name, converter)
        if factory is None:
            pytest.fail(
                f"{route.id}: no way to fill <{converter_name(converter)}:{name}>. Add a "
                f"factory to PARAM_FACTORIES in {__name__} keyed by the parameter name "
                f"({name!r}) or the converter name ({converter_name(converter)!r}): "
                "a function (variant, world) -> str giving an object of the user's own "
                "branch, of another branch and of another ISP (see tests/probe_world.py)."
            )
        value = str(factory(variant, world))
        path = path.replace(f"<{converter_name(converter)}:{name}>", value)
        path = path.replace(f"<{name}>", value)
    return "/" + path


# --- the world: built once for the module, rolled back at its end ------------------------


@dataclass
class Prober:
    """Who probes: a label, the session cookie (None: anonymous), the markers they must
    never see."""

    label: str
    role: str | None
    session: str | None
    forbidden: tuple[str, ...]


@dataclass
class World:
    tokens: dict
    uids: dict
    public_ids: dict
    tenant_probers: list
    public_probers: list
    alpha_host: str


def _session_for(tenant, user) -> str:
    client = tenant.client(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def _uid(pk: int) -> str:
    return base64.urlsafe_b64encode(str(pk).encode()).decode().rstrip("=")


@pytest.fixture(scope="module")
def world(tenants, django_db_blocker):
    """Both ISPs' probe rows and a login per prober, in one transaction kept open for
    the module (each test runs in a savepoint inside it) and rolled back at the end."""
    from payments.models import MpesaSettings, StkRequest

    alpha, beta = tenants["alpha"], tenants["beta"]
    with django_db_blocker.unblock():
        outer = transaction.atomic()
        outer.__enter__()
        try:
            with tenant_context(alpha.isp):
                own = build_set(OWN, "ownbranch", isp_marker="alphaisp", shared_router=True)
                other = build_set(
                    OTHER_BRANCH, MARK_OTHER_BRANCH, isp_marker="alphaisp", run_pk=OWN
                )
                limited = {role: limited_user(role, own.branch) for role in Role.values}
                alpha_token = MpesaSettings.load().callback_token
                public_ids = {
                    "own": StkRequest.objects.get(pk=OWN).public_id,
                    "other_branch": StkRequest.objects.get(pk=OTHER_BRANCH).public_id,
                }
            with tenant_context(beta.isp):
                build_set(OWN, MARK_OTHER_ISP, isp_marker=MARK_OTHER_ISP)
                build_set(OTHER_ISP, MARK_OTHER_ISP, isp_marker=MARK_OTHER_ISP)
                beta_token = MpesaSettings.load().callback_token
                public_ids["other_isp"] = StkRequest.objects.get(pk=OTHER_ISP).public_id
            connection.set_schema_to_public()
            admin = User.objects.create_superuser("probe-root@platform.test", "x-pass-12345")
            public_client = Client(HTTP_HOST="localhost")
            public_client.force_login(admin)
            both = (MARK_OTHER_ISP, MARK_OTHER_BRANCH)
            tenant_probers = [Prober("anonymous", None, None, both)]
            for role in Role.values:
                tenant_probers.append(
                    Prober(role, role, _session_for(alpha, alpha.people[role]), (MARK_OTHER_ISP,))
                )
                tenant_probers.append(
                    Prober(
                        f"{role} (branch-limited)", role, _session_for(alpha, limited[role]), both
                    )
                )
            public_probers = [
                Prober("anonymous", None, None, both),
                Prober(
                    "platform admin",
                    None,
                    public_client.cookies[settings.SESSION_COOKIE_NAME].value,
                    both,
                ),
            ]
            connection.set_schema_to_public()
            yield World(
                tokens={"alpha": alpha_token, "beta": beta_token},
                uids={
                    "own": _uid(alpha.owner.pk),
                    "other_branch": _uid(other.technician.pk),
                    "other_isp": _uid(OTHER_ISP),
                },
                public_ids=public_ids,
                tenant_probers=tenant_probers,
                public_probers=public_probers,
                alpha_host=alpha.host,
            )
        finally:
            connection.set_schema_to_public()
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)


# --- the probe ---------------------------------------------------------------------------


def _allowed(route: Route, prober: Prober) -> bool:
    """Whether the view's declared audience includes this prober (others are refused by
    the role middleware before the view runs, whatever the object: one GET suffices)."""
    audience = declared_roles(route.view)
    if audience in (PUBLIC, LOGGED_IN):
        return True
    if audience == PLATFORM:
        return prober.label == "platform admin"
    if audience == SUBSCRIBER:
        return False  # the portal's own session, which no staff prober holds
    return prober.role is not None and prober.role in tuple(audience or ())


def _client(host: str, prober: Prober) -> Client:
    client = Client(HTTP_HOST=host)
    if prober.session:
        client.cookies[settings.SESSION_COOKIE_NAME] = prober.session
    return client


def _check(problems: list, label: str, response, forbidden) -> None:
    if response.status_code >= 500:
        problems.append(f"{label}: HTTP {response.status_code}")
        return
    if getattr(response, "streaming", False):
        body = b"".join(response.streaming_content)
    else:
        body = response.content
    text = body.decode("utf-8", "replace").lower()
    for marker in forbidden:
        if (at := text.find(marker)) >= 0:
            context = " ".join(text[max(0, at - 60) : at + 30].split())
            problems.append(f"{label}: shows {marker!r} (a row it must not see): ...{context}...")


def _params(route: Route, prober: Prober) -> tuple[str, ...]:
    if not route.converters:
        return ("own",)
    # Another branch only means something to branch-limited staff.
    return VARIANTS if "limited" in prober.label else ("own", "other_isp")


def _probe(route: Route, world: World) -> list[str]:
    public = route.urlconf == PUBLIC_URLCONF
    host = "localhost" if public else world.alpha_host
    probers = world.public_probers if public else world.tenant_probers
    problems: list[str] = []
    for prober in probers:
        allowed = _allowed(route, prober)
        variants = _params(route, prober) if allowed else ("own",)
        methods = ("get", "post") if allowed else ("get",)
        for variant in variants:
            path = fill(route, variant, world)
            for method in methods:
                # A fresh client per request: a logout or a password change must not
                # leak into the next probe.
                client = _client(host, prober)
                label = f"{method.upper()} {path} as {prober.label} ({variant})"
                response = getattr(client, method)(path)
                _check(problems, label, response, prober.forbidden)
    return problems


def _case(route: Route):
    marks = []
    if route.id in KNOWN_FAILURES:
        marks.append(pytest.mark.xfail(reason=KNOWN_FAILURES[route.id], strict=False))
    return pytest.param(route, id=route.id, marks=marks)


@pytest.mark.parametrize("route", [_case(r) for r in ROUTES])
def test_route_gives_no_500_and_no_other_isp_or_branch_data(world, db, route):
    problems = _probe(route, world)
    assert not problems, "\n".join(problems)


def test_routes_are_discovered():
    """The probe would pass vacuously if it found nothing to probe."""
    ids = {r.id for r in ROUTES}
    assert "tenant:billing/runs/<int:pk>/" in ids
    assert "public:login/" in ids
