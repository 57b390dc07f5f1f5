"""Inventory pages: who sees what (technicians their own items, finance nothing),
search and filters, moves from the item page, the history in order, management pages."""

import pytest

from inventory import services
from inventory.models import EquipmentModel, Item, Movement, Store
from ispops.staff.models import Role

Kind = Movement.Kind

PAGES = [
    "/inventory/",
    "/inventory/items/new/",
    "/inventory/stock/",
    "/inventory/models/",
    "/inventory/stores/",
    "/inventory/import/",
]


def test_finance_gets_403_on_every_inventory_page(alpha, receive):
    item = receive()
    client = alpha.client(alpha.finance)
    for url in [*PAGES, f"/inventory/items/{item.pk}/"]:
        assert client.get(url).status_code == 403, url
    response = client.post(f"/inventory/items/{item.pk}/move/", {"kind": "faulty"})
    assert response.status_code == 403
    item.refresh_from_db()
    assert item.state == "in_stock"


def test_a_technician_sees_only_the_items_issued_to_them(alpha, receive):
    mine = receive("MINE-1")
    receive("STORE-2")
    services.move(mine, Kind.ISSUED, actor=alpha.admin, holder=alpha.technician)
    other = receive("SUPPORTS-3")
    services.move(other, Kind.ISSUED, actor=alpha.admin, holder=alpha.support)
    client = alpha.client(alpha.technician)
    html = client.get("/inventory/").content.decode()
    assert "MINE-1" in html and "STORE-2" not in html and "SUPPORTS-3" not in html
    assert "Equipment issued to me" in html
    assert client.get(f"/inventory/items/{mine.pk}/").status_code == 200
    assert client.get(f"/inventory/items/{other.pk}/").status_code == 404
    for url in ["/inventory/stock/", "/inventory/models/", "/inventory/items/new/"]:
        assert client.get(url).status_code == 403, url
    assert client.post(f"/inventory/items/{mine.pk}/move/", {"kind": "faulty"}).status_code == 403


def test_search_by_serial_or_mac_and_filters(alpha, receive, store):
    receive("HWTC-AAA1", mac="aa:bb:cc:dd:ee:01")
    receive("ZTE-BBB2", mac="11:22:33:44:55:66")
    radio = EquipmentModel.objects.create(name="LiteBeam AC", kind="radio")
    receive("UBNT-CCC3", model=radio)
    client = alpha.client(alpha.support)

    def serials(**params):
        html = client.get("/inventory/", params).content.decode()
        return {s for s in ("HWTC-AAA1", "ZTE-BBB2", "UBNT-CCC3") if s in html}

    assert serials(q="hwtc-aaa") == {"HWTC-AAA1"}
    assert serials(q="ddee01") == {"HWTC-AAA1"}
    assert serials(q="33-44-55") == {"ZTE-BBB2"}
    assert serials(model=radio.pk) == {"UBNT-CCC3"}
    assert serials(state="issued") == set()
    assert serials(store=store.pk) == {"HWTC-AAA1", "ZTE-BBB2", "UBNT-CCC3"}


def test_the_list_paginates(alpha, receive):
    for n in range(55):
        receive(f"PAGE{n:03d}")
    client = alpha.client(alpha.support)
    assert "Page 1 of 2" in client.get("/inventory/").content.decode()
    assert "PAGE054" in client.get("/inventory/", {"page": 2}).content.decode()


def test_moves_from_the_item_page_and_the_history_in_order(alpha, receive, make_account):
    item = receive("HIST-1")
    account = make_account("History Customer")
    client = alpha.client(alpha.support)
    url = f"/inventory/items/{item.pk}/move/"
    steps = [
        {"kind": "issued", "technician": alpha.technician.pk},
        {"kind": "installed", "account": account.username},
        {"kind": "faulty", "note": "No power LED"},
        {"kind": "written_off", "note": "Burnt"},
    ]
    for step in steps:
        response = client.post(url, step)
        assert response.status_code == 302, response.content.decode()[:2000]
    item.refresh_from_db()
    assert item.state == "written_off"
    html = client.get(f"/inventory/items/{item.pk}/").content.decode()
    labels = ["Received", "Issued to technician", "Installed", "Marked faulty", "Written off"]
    positions = [html.index(f"<strong>{label}</strong>") for label in labels]
    assert positions == sorted(positions)
    assert "at History Customer" in html and f"by {alpha.support.email}" in html
    assert "No power LED" in html


def test_a_refused_move_is_400_with_the_reason_and_changes_nothing(alpha, receive, make_account):
    item = receive("BAD-MOVE")
    client = alpha.client(alpha.support)
    url = f"/inventory/items/{item.pk}/move/"
    response = client.post(url, {"kind": "installed", "account": "nobody-here"})
    assert response.status_code == 400
    assert "No live service account found" in response.content.decode()
    first = make_account("First Home")
    services.move(item, Kind.INSTALLED, actor="test", service_account=first)
    second = make_account("Second Home")
    response = client.post(url, {"kind": "returned", "store": "999999"})
    assert response.status_code == 400
    item.refresh_from_db()
    assert item.service_account == first
    response = client.post(url, {"kind": "installed", "account": second.username})
    assert response.status_code == 400
    assert "is installed at First Home" in response.content.decode()
    item.refresh_from_db()
    assert item.service_account == first


def test_receiving_an_item_from_the_page(alpha, store, ont):
    client = alpha.client(alpha.support)
    data = {"model": ont.pk, "store": store.pk, "serial": " abc 123 ", "mac": "a1b2c3d4e5f6"}
    response = client.post("/inventory/items/new/", data)
    assert response.status_code == 302
    item = Item.objects.get(serial="ABC123")
    assert item.mac == "A1:B2:C3:D4:E5:F6"
    again = client.post("/inventory/items/new/", {**data, "mac": ""})
    assert again.status_code == 400
    assert "serial ABC123 is already recorded" in again.content.decode()


@pytest.mark.parametrize("role", [Role.SUPPORT, Role.TECHNICIAN, Role.FINANCE])
def test_only_owners_and_admins_manage_models_and_stores(alpha, role):
    client = alpha.client(alpha.people[role])
    response = client.post("/inventory/models/", {"name": "X", "kind": "ont", "is_active": "on"})
    assert response.status_code == 403
    assert not EquipmentModel.objects.filter(name="X").exists()


def test_an_admin_adds_a_model_a_store_and_a_minimum(alpha):
    from ispops.staff.models import Branch

    client = alpha.client(alpha.admin)
    model_data = {"name": "TP-Link C6", "kind": "cpe_router", "is_active": "on"}
    ok = client.post("/inventory/models/", model_data)
    assert ok.status_code == 302
    branch = Branch.objects.first()
    store_data = {"name": "Kisumu", "branch": branch.pk, "is_active": "on"}
    ok = client.post("/inventory/stores/", store_data)
    assert ok.status_code == 302
    model, store = EquipmentModel.objects.get(name="TP-Link C6"), Store.objects.get(name="Kisumu")
    bad = client.post("/inventory/models/", {"name": "", "kind": "toaster"})
    assert bad.status_code == 400
    bad = client.post(
        "/inventory/stock/threshold/", {"model": model.pk, "store": store.pk, "minimum": -1}
    )
    assert bad.status_code == 400 and not store.thresholds.exists()
    ok = client.post(
        "/inventory/stock/threshold/", {"model": model.pk, "store": store.pk, "minimum": 4}
    )
    assert ok.status_code == 302
    assert store.thresholds.get().minimum == 4
    assert "TP-Link C6" in client.get("/inventory/stock/").content.decode()


def test_every_page_renders_for_an_owner(alpha, receive):
    item = receive()
    client = alpha.client(alpha.owner)
    for url in [*PAGES, f"/inventory/items/{item.pk}/"]:
        assert client.get(url).status_code == 200, url
