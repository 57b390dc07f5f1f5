"""Items and their movements: serials and MACs, the one-place rule, history, and two
installs of one item racing on separate connections."""

import itertools
import threading

import pytest
from django.db import connection, connections, transaction
from django.db.utils import IntegrityError
from django_tenants.utils import tenant_context

from inventory import services
from inventory.models import EquipmentModel, Item, Movement, Store
from ispops.audit.models import AuditEntry
from ispops.staff.models import Branch
from subscribers.models import Customer, Plan, ServiceAccount

Kind = Movement.Kind


# --- serials and MACs -------------------------------------------------------------------


def test_serial_is_stored_without_case_or_spaces_and_mac_in_colon_form(receive):
    item = receive(" hwtc 12ab-9 ", mac="aa-bb-cc-dd-ee-0f")
    item.refresh_from_db()
    assert item.serial == "HWTC12AB-9"
    assert item.mac == "AA:BB:CC:DD:EE:0F"


def test_same_serial_in_other_case_or_spacing_is_refused_in_one_isp(receive):
    receive("HWTC12AB")
    with pytest.raises(services.InventoryError, match="serial HWTC12AB is already recorded"):
        receive("hwtc 12ab")
    assert Item.objects.filter(serial="HWTC12AB").count() == 1


def test_serial_uniqueness_is_a_database_constraint(receive, ont, store):
    receive("DBLEVEL1")
    with pytest.raises(IntegrityError), transaction.atomic():
        Item.objects.create(model=ont, store=store, serial="DBLEVEL1")


def test_the_same_serial_may_exist_in_another_isp(alpha, beta):
    for tenant in (alpha, beta):
        with tenant_context(tenant.isp):
            model = EquipmentModel.objects.create(name="Ubiquiti LiteBeam", kind="radio")
            store = Store.objects.create(name="HQ", branch=Branch.objects.first())
            services.receive_item(actor="test", model=model, store=store, serial="UBNT-0001")
    for tenant in (alpha, beta):
        with tenant_context(tenant.isp):
            assert Item.objects.filter(serial="UBNT-0001").count() == 1


@pytest.mark.parametrize("bad", ["AA:BB:CC:DD:EE", "GG:BB:CC:DD:EE:FF", "aabbccddeeff00"])
def test_a_bad_mac_is_refused_and_nothing_is_written(receive, bad):
    with pytest.raises(services.InventoryError, match="not a MAC address"):
        receive("MACTEST", mac=bad)
    assert not Item.objects.filter(serial="MACTEST").exists()
    assert not Movement.objects.exists()


def test_a_mac_belongs_to_one_item(receive):
    receive("M1", mac="001122334455")
    with pytest.raises(services.InventoryError, match="MAC 00:11:22:33:44:55 is already"):
        receive("M2", mac="00:11:22:33:44:55")


# --- moves ---------------------------------------------------------------------------


def test_every_move_is_recorded_with_who_when_and_where(alpha, receive, make_account):
    item = receive("TRACK1")
    account = make_account()
    services.move(item, Kind.ISSUED, actor=alpha.admin, holder=alpha.technician)
    services.move(item, Kind.INSTALLED, actor=alpha.support, service_account=account)
    services.move(item, Kind.RETURNED, actor=alpha.admin, note="Customer left")
    item.refresh_from_db()
    assert (item.state, item.holder, item.service_account) == ("in_stock", None, None)
    moves = list(item.movements.order_by("at", "id"))
    assert [m.kind for m in moves] == ["received", "issued", "installed", "returned"]
    assert [m.actor_label for m in moves] == [
        "test",
        alpha.admin.email,
        alpha.support.email,
        alpha.admin.email,
    ]
    assert moves[1].holder == alpha.technician
    assert moves[2].service_account == account
    assert [(m.from_state, m.to_state) for m in moves[1:]] == [
        ("in_stock", "issued"),
        ("issued", "installed"),
        ("installed", "in_stock"),
    ]
    assert all(a.at <= b.at for a, b in itertools.pairwise(moves))


def test_an_installed_item_cannot_be_installed_at_a_second_customer(receive, make_account):
    item = receive("ONCE-ONLY")
    first, second = make_account("First"), make_account("Second")
    services.move(item, Kind.INSTALLED, actor="test", service_account=first)
    with pytest.raises(services.InventoryError, match="installed at First"):
        services.move(item, Kind.INSTALLED, actor="test", service_account=second)
    item.refresh_from_db()
    assert item.service_account == first
    assert item.movements.filter(kind=Kind.INSTALLED).count() == 1


def test_the_database_refuses_a_place_that_does_not_match_the_state(receive, make_account):
    item = receive("CHECKED")
    with pytest.raises(IntegrityError), transaction.atomic():
        Item.objects.filter(pk=item.pk).update(service_account=make_account())


def test_illegal_moves_are_refused_and_write_nothing(alpha, receive):
    item = receive("RULES")
    with pytest.raises(services.InventoryError, match="cannot be returned"):
        services.move(item, Kind.RETURNED, actor="test")
    with pytest.raises(services.InventoryError, match="say why"):
        services.move(item, Kind.WRITTEN_OFF, actor="test", note=" ")
    with pytest.raises(services.InventoryError, match="cannot be issued equipment"):
        services.move(item, Kind.ISSUED, actor="test", holder=alpha.finance)
    services.move(item, Kind.WRITTEN_OFF, actor="test", note="Lightning")
    with pytest.raises(services.InventoryError, match="written off: it cannot be issued"):
        services.move(item, Kind.ISSUED, actor="test", holder=alpha.technician)
    assert list(item.movements.values_list("kind", flat=True)) == ["received", "written_off"]


# --- two installs at once -------------------------------------------------------------


@pytest.mark.committed
def test_two_concurrent_installs_of_one_item_install_it_once(tenants, django_db_blocker):
    """Connection A installs the item at one customer and holds its transaction open;
    connection B tries to install it at another and must wait for A's row lock, then
    see A's result and be refused."""
    alpha = tenants["alpha"]
    with django_db_blocker.unblock(), tenant_context(alpha.isp):
        last_audit = AuditEntry.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        branch = Branch.objects.order_by("pk").first()
        model = EquipmentModel.objects.create(name="Race ONT", kind="ont")
        store = Store.objects.create(name="Race store", branch=branch)
        plan = Plan.objects.create(name="Race plan", price="1", download_kbps=1, upload_kbps=1)
        accounts = []
        for n in (1, 2):
            customer = Customer.objects.create(account=f"RACE{n}", name=f"Racer {n}")
            accounts.append(
                ServiceAccount.objects.create(customer=customer, plan=plan, service="pppoe")
            )
        item = services.receive_item(actor="test", model=model, store=store, serial="RACE-1")
    outcome = {}
    b_started = threading.Event()
    thread = threading.Thread(target=lambda: install_b())

    def install_b():
        try:
            with tenant_context(alpha.isp):
                b_started.set()
                services.move(item, Kind.INSTALLED, actor="B", service_account=accounts[1])
            outcome["b"] = "installed"
        except Exception as exc:  # the assertion below shows it
            outcome["b"] = str(exc)
        finally:
            connections.close_all()

    try:
        with django_db_blocker.unblock(), tenant_context(alpha.isp):
            with transaction.atomic():
                services.move(item, Kind.INSTALLED, actor="A", service_account=accounts[0])
                thread.start()
                b_started.wait(10)
                _wait_until_blocked_on_a_lock()
            thread.join(30)
            assert outcome["b"].startswith("RACE-1 is installed at Racer 1")
            item.refresh_from_db()
            assert item.service_account_id == accounts[0].pk
            assert list(item.movements.values_list("kind", "actor_label")) == [
                ("received", "test"),
                ("installed", "A"),
            ]
    finally:
        if thread.is_alive() or thread.ident:
            thread.join(30)
        with django_db_blocker.unblock(), tenant_context(alpha.isp):
            Movement.objects.filter(item__store=store).delete()
            Item.objects.filter(store=store).delete()
            store.delete()
            model.delete()
            ServiceAccount.objects.filter(pk__in=[a.pk for a in accounts]).delete()
            Customer.objects.filter(account__startswith="RACE").delete()
            plan.delete()
            AuditEntry.objects.filter(pk__gt=last_audit).delete()
        connection.set_schema_to_public()


def _wait_until_blocked_on_a_lock(limit: int = 2000) -> None:
    """Poll until another backend of this database waits on a lock (B reached A's row
    lock), so the test proves the lock rather than a lucky order."""
    for _ in range(limit):
        with connections["default"].cursor() as cursor:
            # Inside a transaction the activity view is a snapshot unless cleared.
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            )
            if cursor.fetchone()[0]:
                return
        threading.Event().wait(0.005)
    raise AssertionError("the second install never waited for the first one's lock")
