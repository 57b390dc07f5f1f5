"""Inventory operations: receiving items, moving them (the one way an item's place or
state changes), installing the equipment of an installation, and low-stock alerts.

Every move locks the item row (SELECT ... FOR UPDATE) and writes its Movement in the
same transaction, so two people acting on one item at once are served one after the
other and the second sees the first's result: an item cannot be installed at two
customers. Item rows are changed with QuerySet.update(): the Movement is their record,
so they add no audit entry of their own.
"""

import logging
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Q
from django.utils import timezone
from django_tenants.utils import schema_context

from inventory.models import (
    EquipmentModel,
    Item,
    ItemState,
    Movement,
    StockThreshold,
    Store,
    normalise_mac,
    normalise_serial,
)
from ispops import audit
from ispops.staff.models import Role, User

log = logging.getLogger(__name__)

Kind = Movement.Kind
State = ItemState

# Staff who may hold equipment (the same people who may be given installation jobs).
HOLDER_ROLES = (Role.TECHNICIAN, Role.SUPPORT, Role.ADMIN, Role.OWNER)


class InventoryError(ValueError):
    """A change the rules refuse; str() is the reason shown to staff."""


@dataclass(frozen=True)
class Rule:
    from_states: tuple[str, ...]
    to_state: str


# What each movement needs the item to be, and what it makes it.
RULES = {
    Kind.ISSUED: Rule((State.IN_STOCK,), State.ISSUED),
    Kind.INSTALLED: Rule((State.IN_STOCK, State.ISSUED), State.INSTALLED),
    Kind.RETURNED: Rule((State.ISSUED, State.INSTALLED, State.FAULTY), State.IN_STOCK),
    Kind.FAULTY: Rule((State.IN_STOCK, State.ISSUED, State.INSTALLED), State.FAULTY),
    Kind.WRITTEN_OFF: Rule(
        (State.IN_STOCK, State.ISSUED, State.INSTALLED, State.FAULTY), State.WRITTEN_OFF
    ),
}


def allowed_moves(state: str) -> list[str]:
    return [kind for kind, rule in RULES.items() if state in rule.from_states]


def clean_serial(raw: str) -> str:
    serial = normalise_serial(raw)
    if not serial:
        raise InventoryError("a serial number is needed")
    if len(serial) > 64:
        raise InventoryError(f"serial {serial[:20]}… is longer than 64 characters")
    return serial


def clean_mac(raw: str) -> str:
    try:
        return normalise_mac(raw)
    except ValidationError as exc:
        raise InventoryError(exc.messages[0]) from None


# --- receiving --------------------------------------------------------------------------


def receive_item(
    *,
    actor,
    model: EquipmentModel,
    store: Store,
    serial: str,
    mac: str = "",
    supplier: str = "",
    purchased_on=None,
    cost=None,
    notes: str = "",
) -> Item:
    """A new item arrives in a store: the item and its Received movement."""
    serial, mac = clean_serial(serial), clean_mac(mac)
    user, label = audit.describe_actor(actor)
    try:
        with transaction.atomic(), audit.acting_as(actor):
            item = Item.objects.create(
                model=model,
                store=store,
                serial=serial,
                mac=mac,
                supplier=supplier,
                purchased_on=purchased_on,
                cost=cost,
                notes=notes,
            )
            Movement.objects.create(
                item=item,
                kind=Kind.RECEIVED,
                at=item.created_at,
                actor=user,
                actor_label=label,
                to_state=State.IN_STOCK,
                store=store,
                note=f"From {supplier}" if supplier else "",
            )
            check_low_stock(model.pk, store.pk)
    except IntegrityError as exc:
        raise InventoryError(_duplicate_reason(exc, serial, mac)) from None
    return item


def _duplicate_reason(exc: IntegrityError, serial: str, mac: str) -> str:
    if "item_mac_unique" in str(exc):
        return f"MAC {mac} is already recorded on another item"
    return f"serial {serial} is already recorded"


# --- moving ---------------------------------------------------------------------------


def move(
    item: Item,
    kind: str,
    *,
    actor,
    store: Store | None = None,
    holder: User | None = None,
    service_account=None,
    note: str = "",
) -> Movement:
    """Move an item: issue it to a technician, install it at a service account, return
    it to a store, mark it faulty or write it off. Raises InventoryError."""
    if kind not in RULES:
        raise InventoryError(f"unknown movement {kind!r}")
    note = (note or "").strip()
    if kind == Kind.ISSUED:
        if holder is None:
            raise InventoryError("choose the technician the item is issued to")
        if not holder.is_active or holder.role not in HOLDER_ROLES:
            raise InventoryError(f"{holder} cannot be issued equipment")
    if kind == Kind.INSTALLED and service_account is None:
        raise InventoryError("choose the service account the item is installed at")
    if kind == Kind.WRITTEN_OFF and not note:
        raise InventoryError("say why the item is written off")
    user, label = audit.describe_actor(actor)
    rule = RULES[kind]
    with transaction.atomic():
        locked = Item.objects.select_for_update().get(pk=item.pk)
        if locked.state not in rule.from_states:
            raise InventoryError(_refusal(locked, kind))
        now = timezone.now()
        to_store = store or locked.store
        place = {
            "state": rule.to_state,
            "store": to_store,
            "holder": holder if kind == Kind.ISSUED else None,
            "service_account": service_account if kind == Kind.INSTALLED else None,
            "moved_at": now,
        }
        Item.objects.filter(pk=locked.pk).update(**place)
        movement = Movement.objects.create(
            item=locked,
            kind=kind,
            at=now,
            actor=user,
            actor_label=label,
            from_state=locked.state,
            to_state=rule.to_state,
            store=to_store,
            holder=place["holder"],
            service_account=place["service_account"],
            note=note[:255],
        )
        # The stock of the store it left, and of the store it came back to.
        if locked.state == State.IN_STOCK:
            check_low_stock(locked.model_id, locked.store_id)
        if rule.to_state == State.IN_STOCK:
            check_low_stock(locked.model_id, to_store.pk)
    for name, value in place.items():
        setattr(item, name, value)
    return movement


def _refusal(item: Item, kind: str) -> str:
    where = ""
    if item.state == State.INSTALLED and item.service_account_id:
        where = f" at {_account_label(item.service_account)}"
    elif item.state == State.ISSUED and item.holder_id:
        where = f" to {item.holder}"
    now = f"{item.serial} is {item.get_state_display().lower()}{where}"
    if kind == Kind.INSTALLED and item.state == State.INSTALLED:
        return f"{now}; return it to a store before installing it elsewhere"
    return f"{now}: it cannot be {Kind(kind).label.lower()}"


def _account_label(account) -> str:
    return f"{account.customer.name} ({account.customer.account}, {account})"


def history(item: Item):
    """The item's movements from purchase to now, oldest first."""
    return item.movements.select_related("actor", "store", "holder", "service_account__customer")


# --- the lead workflow ------------------------------------------------------------------


def in_use() -> bool:
    """An ISP uses inventory once it has a store; until then an installation's serials
    are recorded on the installation only (nothing to check them against)."""
    return Store.objects.exists()


def check_installable(serials, service_account, installation=None) -> None:
    """Refuse serials that are not in stock, not issued to a technician, and not already
    installed at this service account: unknown, faulty, written off, or at someone else;
    and serials another installation has been allocated and not yet installed. The items
    are locked, so two allocations of one serial at once are decided one after the
    other. Raises InventoryError listing them all."""
    from subscribers.models import Installation

    if not serials or not in_use():
        return
    serials = [clean_serial(s) for s in serials]
    items = list(Item.objects.select_for_update().filter(serial__in=serials).order_by("pk"))
    _problems(items, serials, service_account)
    elsewhere = Installation.objects.filter(
        stage=Installation.Stage.EQUIPPED, equipment_serials__overlap=serials
    )
    if installation is not None:
        elsewhere = elsewhere.exclude(pk=installation.pk)
    taken = sorted({s for inst in elsewhere for s in inst.equipment_serials if s in set(serials)})
    if taken:
        raise InventoryError(f"allocated to another installation already: {', '.join(taken)}")


def install_for_installation(installation, *, actor) -> list[Movement]:
    """The installation is done: its equipment becomes installed at its service account.
    Items already there are left as they are. Raises InventoryError (nothing moves)."""
    serials = [normalise_serial(s) for s in installation.equipment_serials]
    if not serials or not in_use():
        return []
    account = installation.service_account
    with transaction.atomic():
        items = list(Item.objects.select_for_update().filter(serial__in=serials).order_by("pk"))
        _problems(items, serials, account)
        return [
            move(
                item,
                Kind.INSTALLED,
                actor=actor,
                service_account=account,
                note=f"Installation #{installation.pk}",
            )
            for item in items
            if not (item.state == State.INSTALLED and item.service_account_id == account.pk)
        ]


def return_from_installation(installation, *, actor) -> list[Movement]:
    """The installation was cancelled: what was installed at its service account goes
    back to the store it came from (issued items stay with their technician)."""
    if not in_use():
        return []
    with transaction.atomic():
        items = Item.objects.select_for_update().filter(
            service_account=installation.service_account, state=State.INSTALLED
        )
        note = f"Installation #{installation.pk} cancelled"
        return [move(item, Kind.RETURNED, actor=actor, note=note) for item in items.order_by("pk")]


def _problems(items, serials, account) -> None:
    found = {item.serial: item for item in items}
    unknown = [s for s in serials if s not in found]
    reasons = []
    if unknown:
        reasons.append(f"not in inventory: {', '.join(unknown)} (receive them into a store first)")
    for item in items:
        if item.state == State.INSTALLED and item.service_account_id == account.pk:
            continue
        if item.state not in RULES[Kind.INSTALLED].from_states:
            reasons.append(_refusal(item, Kind.INSTALLED))
    if reasons:
        raise InventoryError("; ".join(reasons))


def installed_at_customer(customer):
    """The equipment installed at a customer's service accounts (one query)."""
    return (
        Item.objects.filter(service_account__customer=customer, state=State.INSTALLED)
        .select_related("model", "service_account")
        .order_by("service_account_id", "model__name", "serial")
    )


# --- stock and low-stock alerts ------------------------------------------------------


def stock_counts(stores=None) -> dict[tuple[int, int], int]:
    """{(store id, model id): items in stock}."""
    items = Item.objects.filter(state=State.IN_STOCK)
    if stores is not None:
        items = items.filter(store__in=stores)
    rows = items.values_list("store_id", "model_id").annotate(n=Count("id")).order_by()
    return {(store_id, model_id): n for store_id, model_id, n in rows}


def set_threshold(*, actor, model: EquipmentModel, store: Store, minimum: int) -> StockThreshold:
    """Create or change the minimum of a model at a store (0 removes it), and check it."""
    with transaction.atomic(), audit.acting_as(actor):
        existing = StockThreshold.objects.filter(model=model, store=store).first()
        if not minimum:
            if existing:
                existing.delete()
            return None
        if existing is None:
            existing = StockThreshold.objects.create(model=model, store=store, minimum=minimum)
        elif existing.minimum != minimum:
            existing.minimum = minimum
            existing.save(update_fields=["minimum"])
        check_low_stock(model.pk, store.pk)
    existing.refresh_from_db()
    return existing


def check_low_stock(model_id: int, store_id: int) -> bool | None:
    """Compare a store's stock of a model with its threshold. Opens the dip (and queues
    one email to the owners and admins) when it drops below; closes it when it is back.
    Returns True when a new dip opened, False when none did, None with no threshold."""
    # Locked, so concurrent moves of one model and store count one after the other and
    # the second sees the first's item.
    threshold = (
        StockThreshold.objects.select_for_update()
        .filter(model_id=model_id, store_id=store_id)
        .first()
    )
    if threshold is None:
        return None
    count = Item.objects.filter(model_id=model_id, store_id=store_id, state=State.IN_STOCK).count()
    rows = StockThreshold.objects.filter(pk=threshold.pk)
    if count < threshold.minimum:
        # The conditional UPDATE is the "once": a second check in the same dip, even a
        # concurrent one, finds low_since set and opens nothing.
        opened = rows.filter(low_since__isnull=True).update(
            low_since=timezone.now(), notified_at=None, in_stock=count
        )
        if not opened:
            rows.update(in_stock=count)
        if opened:
            _notify_on_commit(threshold.pk)
        return bool(opened)
    rows.update(low_since=None, notified_at=None, in_stock=count)
    return False


def check_all_thresholds() -> int:
    """The periodic check: every threshold, and an email for a dip whose email was not
    sent (the broker was down when it opened). Returns how many dips are open."""
    for model_id, store_id in StockThreshold.objects.values_list("model_id", "store_id"):
        with transaction.atomic():
            check_low_stock(model_id, store_id)
    for threshold_id in StockThreshold.objects.filter(
        low_since__isnull=False, notified_at__isnull=True
    ).values_list("pk", flat=True):
        _notify_on_commit(threshold_id)
    return StockThreshold.objects.filter(low_since__isnull=False).count()


def low_stock():
    """The open dips, for the in-app list."""
    return StockThreshold.objects.filter(low_since__isnull=False).select_related(
        "model", "store__branch"
    )


def _notify_on_commit(threshold_id: int) -> None:
    schema = connection.schema_name

    def queue():
        from inventory.tasks import notify_low_stock
        from ispops.tasks import hand_to_worker

        with schema_context(schema):  # the periodic check queues it again if this fails
            hand_to_worker(notify_low_stock, threshold_id, what=f"low-stock alert {threshold_id}")

    transaction.on_commit(queue, robust=True)


def alert_recipients(store: Store) -> list[str]:
    """Active owners and admins who see the store's branch."""
    people = User.objects.filter(is_active=True, role__in=[Role.OWNER, Role.ADMIN]).exclude(
        email=""
    )
    people = people.filter(Q(branches__isnull=True) | Q(branches=store.branch_id))
    return sorted(set(people.values_list("email", flat=True)))


def notify_low_stock(threshold_id: int) -> bool:
    """Email an open dip once: the claim on notified_at makes a second call a no-op."""
    claimed = StockThreshold.objects.filter(
        pk=threshold_id, low_since__isnull=False, notified_at__isnull=True
    ).update(notified_at=timezone.now())
    if not claimed:
        return False
    threshold = StockThreshold.objects.select_related("model", "store").get(pk=threshold_id)
    recipients = alert_recipients(threshold.store)
    if not recipients:
        return False
    body = (
        f"{threshold.store} has {threshold.in_stock} {threshold.model} in stock, "
        f"below the minimum of {threshold.minimum}.\n\n"
        "The alert clears by itself when stock is back at the minimum.\n"
    )
    try:
        send_mail(
            f"[ispops] Low stock: {threshold.model} at {threshold.store}", body, None, recipients
        )
    except Exception:
        StockThreshold.objects.filter(pk=threshold_id).update(notified_at=None)
        log.exception("could not email low-stock alert %s", threshold_id)
        return False
    return True
