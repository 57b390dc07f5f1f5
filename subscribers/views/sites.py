"""Network map pages: the tree of sites (POP -> tower/OLT -> splitter/sector) with how
full each node is, a node's page with the accounts hanging on it, and the site form."""

from dataclasses import dataclass, field

from django.contrib import messages
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Count
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path

from ispops import audit
from ispops.lib.htmx import render_partial
from ispops.staff.access import any_staff, roles
from ispops.staff.models import Branch, Role
from ispops.staff.scoping import in_branches_of
from subscribers.forms_plans import SiteForm
from subscribers.models import Customer, NetworkSite, ServiceAccount
from subscribers.views.plans import LIVE_STATUSES

EDITORS = (Role.OWNER, Role.ADMIN, Role.SUPPORT)
WARN_PERCENT, FULL_PERCENT = 80, 100


def visible_sites(user):
    """Sites of the branches this staff member sees; sites of no branch are everyone's."""
    return in_branches_of(user, NetworkSite.objects.select_related("branch"))


def get_site_for(request, pk) -> NetworkSite:
    return get_object_or_404(visible_sites(request.user), pk=pk)


def attached_counts(site_ids=None) -> dict[int, int]:
    """{site id: live accounts attached directly}, in one aggregate query."""
    rows = ServiceAccount.objects.filter(site__isnull=False, status__in=LIVE_STATUSES)
    if site_ids is not None:
        rows = rows.filter(site_id__in=site_ids)
    return dict(rows.values("site_id").annotate(n=Count("id")).values_list("site_id", "n"))


@dataclass
class Node:
    site: NetworkSite
    attached: int
    children: list = field(default_factory=list)
    total: int = 0

    @property
    def fill(self) -> int | None:
        """Percent of capacity used by the accounts in this node's subtree (a leaf's
        are its own; a tower's capacity covers the sectors below it)."""
        if not self.site.capacity:
            return None
        return round(self.total * 100 / self.site.capacity)

    @property
    def fill_level(self) -> str:
        fill = self.fill
        if fill is None:
            return ""
        return "bad" if fill >= FULL_PERCENT else "warn" if fill >= WARN_PERCENT else "ok"

    @property
    def bar_width(self) -> int:
        return min(self.fill or 0, 100)


def build_tree(sites, counts) -> list[Node]:
    """Roots of the forest made of `sites`; a site whose parent is not among them (another
    branch, filtered out) is shown as a root. Subtree totals summed bottom-up."""
    nodes = {s.pk: Node(site=s, attached=counts.get(s.pk, 0)) for s in sites}
    roots = []
    for node in nodes.values():
        parent = nodes.get(node.site.parent_id)
        (parent.children if parent else roots).append(node)

    def total(node, path):
        node.total = node.attached + sum(
            total(child, path | {node.site.pk})
            for child in node.children
            if child.site.pk not in path  # a cycle in bad data must not loop forever
        )
        return node.total

    for root in roots:
        total(root, frozenset())
    return roots


@any_staff
def site_list(request):
    sites = visible_sites(request.user).order_by("name")
    branches = Branch.objects.visible_to(request.user)
    branch = _chosen_branch(request, branches)
    if branch is not None:
        sites = sites.filter(branch=branch)
    sites = list(sites)
    roots = build_tree(sites, attached_counts([s.pk for s in sites]))
    context = {
        "roots": roots,
        "branches": branches,
        "branch": branch,
        "count": len(sites),
        "can_edit": request.user.role in EDITORS,
        "warn": WARN_PERCENT,
    }
    return render_partial(request, "subscribers/sites/tree.html", "tree", context)


def _chosen_branch(request, branches):
    raw = request.GET.get("branch", "")
    if not raw.isdigit():
        return None
    return next((b for b in branches if b.pk == int(raw)), None)


@any_staff
def site_detail(request, pk):
    site = get_site_for(request, pk)
    # The whole visible forest (two queries) gives the node its children and totals.
    sites = list(visible_sites(request.user))
    node = _find(build_tree(sites, attached_counts()), site.pk) or Node(site=site, attached=0)
    accounts = (
        ServiceAccount.objects.filter(site=site)
        .exclude(status=ServiceAccount.Status.TERMINATED)
        .filter(customer__in=Customer.objects.visible_to(request.user))
        .select_related("customer", "plan")
        .order_by("customer__name", "id")
    )
    page = Paginator(accounts, 25).get_page(request.GET.get("page"))
    context = {
        "site": site,
        "node": node,
        "ancestors": _ancestors(site, {s.pk: s for s in sites}),
        "page": page,
        "can_edit": request.user.role in EDITORS,
    }
    return render(request, "subscribers/sites/detail.html", context)


def _find(nodes, pk) -> Node | None:
    for node in nodes:
        if node.site.pk == pk:
            return node
        found = _find(node.children, pk)
        if found is not None:
            return found
    return None


def _ancestors(site, by_id) -> list[NetworkSite]:
    """The visible sites above `site`, POP first."""
    chain, parent = [], by_id.get(site.parent_id)
    while parent is not None and parent not in chain and parent.pk != site.pk:
        chain.append(parent)
        parent = by_id.get(parent.parent_id)
    return chain[::-1]


@roles(*EDITORS)
def site_new(request):
    sites = visible_sites(request.user)
    initial = {}
    raw_parent = request.GET.get("parent", "")
    if raw_parent.isdigit():
        parent = sites.filter(pk=int(raw_parent)).first()
        if parent is not None:
            initial = {"parent": parent, "branch": parent.branch}
    form = SiteForm(request.POST or None, initial=initial, user=request.user, sites=sites)
    if request.method == "POST" and form.is_valid():
        site = _save(request, form)
        messages.success(request, f"Site {site} added.")
        return redirect("subscribers:site", pk=site.pk)
    return render(request, "subscribers/sites/form.html", {"form": form, "site": None})


@roles(*EDITORS)
def site_edit(request, pk):
    sites = visible_sites(request.user)
    site = get_site_for(request, pk)
    form = SiteForm(request.POST or None, instance=site, user=request.user, sites=sites)
    if request.method == "POST" and form.is_valid():
        _save(request, form)
        messages.success(request, "Saved.")
        return redirect("subscribers:site", pk=site.pk)
    return render(request, "subscribers/sites/form.html", {"form": form, "site": site})


def _save(request, form) -> NetworkSite:
    with transaction.atomic(), audit.acting_as(request.user):
        return form.save()


urls = [
    path("network-map/", site_list, name="sites"),
    path("network-map/new/", site_new, name="site_new"),
    path("network-map/<int:pk>/", site_detail, name="site"),
    path("network-map/<int:pk>/edit/", site_edit, name="site_edit"),
]
