"""Network map: the site tree with attached accounts per node and subtree, the site page,
the site form (no cycles), and branch limits."""

import itertools
from decimal import Decimal

import pytest
from django_tenants.utils import tenant_context

from ispops.audit.models import AuditEntry
from ispops.staff.models import Branch, Role, User
from subscribers import services
from subscribers.models import NetworkSite, Plan

PASSWORD = "correct-horse-battery-9"
_phones = itertools.count(1)


def make_site(name, kind="pop", parent=None, **fields) -> NetworkSite:
    return NetworkSite.objects.create(name=name, kind=kind, parent=parent, **fields)


def attach(site, *statuses, name="Akinyi Otieno"):
    """A customer with one service account per status, all hanging on `site`."""
    plan, _ = Plan.objects.get_or_create(
        name="Map plan",
        defaults={"price": Decimal("1000.00"), "download_kbps": 5000, "upload_kbps": 2000},
    )
    customer = services.create_customer(
        actor="test", name=name, phone=f"0711{next(_phones):06d}", branch=site.branch
    )
    for status in statuses:
        services.create_service_account(
            actor="test", customer=customer, plan=plan, site=site, status=status
        )
    return customer


@pytest.fixture
def network(in_alpha):
    """POP -> tower -> two sectors, and an OLT with a splitter, in alpha."""
    pop = make_site("Kasarani POP", capacity=10)
    tower = make_site("Mwiki tower", "tower", pop, capacity=5)
    sector_a = make_site("Mwiki sector A", "sector", tower, capacity=4)
    sector_b = make_site("Mwiki sector B", "sector", tower)
    olt = make_site("Kasarani OLT", "olt", pop)
    splitter = make_site("Splitter 1:8", "splitter", olt, capacity=8)
    attach(sector_a, "active", "suspended", "installing", "terminated", "lead")
    attach(sector_b, "active", name="Brian Mwangi")
    attach(tower, "active", "terminated", name="Chebet Koech")
    return {
        "pop": pop,
        "tower": tower,
        "sector_a": sector_a,
        "sector_b": sector_b,
        "olt": olt,
        "splitter": splitter,
    }


def nodes_by_name(roots):
    found = {}
    stack = list(roots)
    while stack:
        node = stack.pop()
        found[node.site.name] = node
        stack.extend(node.children)
    return found


def test_tree_counts_attached_accounts_per_node_and_subtree_without_terminated(
    alpha, network, django_assert_max_num_queries
):
    client = alpha.client(alpha.owner)
    client.get("/network-map/")
    # Tenant routing, session, user and its branches, the branch filter, the session
    # save, each maybe after a SET search_path; of the map's own: all sites, one count.
    with django_assert_max_num_queries(22) as captured:
        response = client.get("/network-map/")
    assert response.status_code == 200
    assert len([q for q in captured.captured_queries if "subscribers_" in q["sql"]]) == 2
    nodes = nodes_by_name(response.context["roots"])
    assert [n.site.name for n in response.context["roots"]] == ["Kasarani POP"]
    # active + suspended + installing; terminated and lead do not hold a port
    assert nodes["Mwiki sector A"].attached == 3
    assert nodes["Mwiki sector B"].attached == 1
    assert nodes["Mwiki tower"].attached == 1
    assert nodes["Mwiki tower"].total == 5
    assert nodes["Kasarani POP"].attached == 0
    assert nodes["Kasarani POP"].total == 5
    assert nodes["Splitter 1:8"].total == 0
    # fill: the subtree against capacity, warn from 80 %, bad from 100 %
    assert (nodes["Mwiki sector A"].fill, nodes["Mwiki sector A"].fill_level) == (75, "ok")
    assert (nodes["Mwiki tower"].fill, nodes["Mwiki tower"].fill_level) == (100, "bad")
    assert nodes["Mwiki sector B"].fill is None
    page = response.content.decode()
    assert page.index("Kasarani POP") < page.index("Mwiki tower") < page.index("Mwiki sector A")


def test_fill_warns_from_eighty_percent(alpha, in_alpha):
    sector = make_site("Full-ish sector", "sector", capacity=5)
    attach(sector, "active", "active", "active", "active")
    response = alpha.client(alpha.support).get("/network-map/")
    node = nodes_by_name(response.context["roots"])["Full-ish sector"]
    assert (node.fill, node.fill_level) == (80, "warn")
    assert 'class="fill warn"' in response.content.decode()


def test_site_page_lists_live_accounts_with_links_and_history(alpha, network):
    response = alpha.client(alpha.technician).get(f"/network-map/{network['sector_a'].pk}/")
    assert response.status_code == 200
    page = response.content.decode()
    accounts = list(response.context["page"])
    assert len(accounts) == 4  # terminated left out; the lead is shown, not counted
    customer_id = accounts[0].customer_id
    assert f'href="/subscribers/{customer_id}/"' in page
    assert 'class="badge suspended"' in page
    assert "Kasarani POP" in page and "Mwiki tower" in page  # the path to the POP
    assert "History" in page


def test_site_page_paginates_accounts_by_25(alpha, in_alpha):
    sector = make_site("Busy sector", "sector")
    attach(sector, *["active"] * 30)
    client = alpha.client(alpha.owner)
    first = client.get(f"/network-map/{sector.pk}/")
    assert len(first.context["page"]) == 25
    assert first.context["node"].attached == 30
    second = client.get(f"/network-map/{sector.pk}/?page=2")
    assert len(second.context["page"]) == 5


def test_support_adds_a_site_below_a_parent(alpha, network):
    client = alpha.client(alpha.support)
    form = client.get(f"/network-map/new/?parent={network['olt'].pk}").context["form"]
    assert form.initial["parent"] == network["olt"]
    response = client.post(
        "/network-map/new/",
        {
            "name": "Splitter 2",
            "kind": "splitter",
            "parent": network["olt"].pk,
            "capacity": "16",
            "latitude": "-1.219000",
            "longitude": "36.900000",
            "notes": "",
        },
    )
    assert response.status_code == 302
    site = NetworkSite.objects.get(name="Splitter 2")
    assert site.parent == network["olt"]
    entry = AuditEntry.objects.for_object(site).get()
    assert entry.actor == alpha.support


@pytest.mark.parametrize("role", [Role.FINANCE, Role.TECHNICIAN])
def test_finance_and_technicians_see_the_map_but_cannot_change_it(alpha, network, role):
    client = alpha.client(alpha.people[role])
    assert client.get("/network-map/").status_code == 200
    assert client.get("/network-map/new/").status_code == 403
    tower = network["tower"]
    response = client.post(f"/network-map/{tower.pk}/edit/", {"name": "Renamed", "kind": "pop"})
    assert response.status_code == 403
    tower.refresh_from_db()
    assert tower.name == "Mwiki tower"


def test_a_site_cannot_hang_below_its_own_descendant(alpha, network):
    pop = network["pop"]
    data = {"name": pop.name, "kind": "pop", "parent": network["sector_a"].pk}
    response = alpha.client(alpha.admin).post(f"/network-map/{pop.pk}/edit/", data)
    assert response.status_code == 200
    assert "below itself" in response.context["form"].errors["parent"][0]
    pop.refresh_from_db()
    assert pop.parent is None


def test_a_site_cannot_be_its_own_parent(alpha, network):
    tower = network["tower"]
    data = {"name": tower.name, "kind": "tower", "parent": tower.pk}
    response = alpha.client(alpha.owner).post(f"/network-map/{tower.pk}/edit/", data)
    assert response.status_code == 200
    assert "parent" in response.context["form"].errors
    tower.refresh_from_db()
    assert tower.parent == network["pop"]


def test_moving_a_site_to_another_branch_of_the_tree_is_allowed(alpha, network):
    sector_b = network["sector_b"]
    data = {"name": sector_b.name, "kind": "sector", "parent": network["olt"].pk}
    response = alpha.client(alpha.owner).post(f"/network-map/{sector_b.pk}/edit/", data)
    assert response.status_code == 302
    sector_b.refresh_from_db()
    assert sector_b.parent == network["olt"]


def test_branch_limited_staff_see_only_their_branch_sites(alpha, in_alpha):
    home = Branch.objects.get(code="alpha-0")
    other = Branch.objects.create(name="Alpha Thika", code="alpha-thika")
    shared = make_site("Core POP")
    mine = make_site("Ruiru tower", "tower", shared, branch=home)
    theirs = make_site("Thika tower", "tower", shared, branch=other)
    limited = User.objects.create_user(
        "limited@alpha.test", PASSWORD, role=Role.SUPPORT, full_name="Limited"
    )
    limited.branches.set([home])
    client = alpha.client(limited)

    page = client.get("/network-map/").content.decode()
    assert "Core POP" in page and "Ruiru tower" in page
    assert "Thika tower" not in page
    assert client.get(f"/network-map/{theirs.pk}/").status_code == 404
    assert client.get(f"/network-map/{theirs.pk}/edit/").status_code == 404
    assert client.get(f"/network-map/{mine.pk}/").status_code == 200
    # Their new sites stay in their branch, and other branches' sites are no parents.
    form = client.get("/network-map/new/").context["form"]
    assert list(form.fields["branch"].queryset) == [home]
    assert theirs not in form.fields["parent"].queryset


def test_the_map_filters_by_branch(alpha, in_alpha):
    home = Branch.objects.get(code="alpha-0")
    other = Branch.objects.create(name="Alpha Thika", code="alpha-thika")
    make_site("Ruiru tower", "tower", branch=home)
    make_site("Thika tower", "tower", branch=other)
    client = alpha.client(alpha.owner)
    page = client.get(f"/network-map/?branch={other.pk}").content.decode()
    assert "Thika tower" in page and "Ruiru tower" not in page
    # htmx asks for the tree fragment only.
    fragment = client.get(f"/network-map/?branch={home.pk}", HTTP_HX_REQUEST="true")
    text = fragment.content.decode()
    assert "Ruiru tower" in text and "Thika tower" not in text
    assert "<html" not in text


def test_sites_of_alpha_are_not_reachable_from_beta(alpha, beta):
    with tenant_context(alpha.isp):
        site = make_site("Alpha only POP")
    response = beta.client(beta.owner).get(f"/network-map/{site.pk}/")
    assert response.status_code == 404
    assert "Alpha only POP" not in beta.client(beta.owner).get("/network-map/").content.decode()
