"""CSV import of items: all rows or none.

Columns: serial,model,store[,mac][,supplier][,purchased_on][,cost][,notes] (found by the
header's names). model and store are names of existing ones (any case). Every row is
checked first and every bad row reported with its line number (the header is line 1);
only a file with no bad row is written, in one transaction: each item with its Received
movement. The command (import_items) and the import page share this code.
"""

from datetime import date
from decimal import Decimal, InvalidOperation

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.dateparse import parse_date

from inventory import services
from inventory.models import EquipmentModel, Item, ItemState, Movement, Store
from ispops import audit
from ispops.lib.csvimport import ImportReport, read_rows

REQUIRED = ["serial", "model", "store"]
OPTIONAL = ["mac", "supplier", "purchased_on", "cost", "notes"]
COLUMNS = "serial,model,store[,mac][,supplier][,purchased_on][,cost][,notes]"
MAX_ROWS = 20_000


def import_items(text: str, *, actor, dry_run: bool = False, stores=None) -> ImportReport:
    """Import items into `stores` (a queryset; default every active store)."""
    report = ImportReport(dry_run=dry_run)
    rows = read_rows(text, REQUIRED, OPTIONAL, report)
    if len(rows) > MAX_ROWS:
        report.add(1, f"{len(rows)} rows; at most {MAX_ROWS} can be imported at once")
        return report
    models = {m.name.lower(): m for m in EquipmentModel.objects.all()}
    stores = {s.name.lower(): s for s in (stores or Store.objects.filter(is_active=True))}
    serials_seen: dict[str, int] = {}
    macs_seen: dict[str, int] = {}
    items = []
    for line, row in rows:
        try:
            item = _item_from_row(row, models, stores)
        except (ValueError, services.InventoryError) as exc:
            report.add(line, str(exc))
            continue
        if item.serial in serials_seen:
            report.add(line, f"serial {item.serial} is also on line {serials_seen[item.serial]}")
            continue
        serials_seen[item.serial] = line
        if item.mac:
            if item.mac in macs_seen:
                report.add(line, f"MAC {item.mac} is also on line {macs_seen[item.mac]}")
                continue
            macs_seen[item.mac] = line
        items.append((line, item))
    _check_existing(items, report)
    if report.ok and not dry_run:
        try:
            _write([item for _, item in items], actor)
        except IntegrityError:
            # Someone recorded one of these serials between the check and the write.
            report.add(1, "an item of this file was recorded meanwhile; nothing imported")
    report.created = len(items) if report.ok else 0
    report.errors.sort(key=lambda e: e["line"])
    return report


def _item_from_row(row: dict, models: dict, stores: dict) -> Item:
    serial = services.clean_serial(row["serial"])
    model = models.get(row["model"].lower())
    if model is None:
        raise ValueError(f"no equipment model named {row['model']!r}")
    store = stores.get(row["store"].lower())
    if store is None:
        raise ValueError(f"no store named {row['store']!r}")
    supplier = row.get("supplier") or ""
    if len(supplier) > 120:
        raise ValueError("supplier is longer than 120 characters")
    return Item(
        model=model,
        store=store,
        serial=serial,
        mac=services.clean_mac(row.get("mac") or ""),
        supplier=supplier,
        purchased_on=_date(row.get("purchased_on") or ""),
        cost=_cost(row.get("cost") or ""),
        notes=row.get("notes") or "",
    )


def _date(text: str) -> date | None:
    if not text:
        return None
    try:
        day = parse_date(text)
    except ValueError:
        day = None
    if day is None:
        raise ValueError(f"purchased_on {text!r} is not a date (YYYY-MM-DD)")
    return day


def _cost(text: str) -> Decimal | None:
    if not text:
        return None
    try:
        value = Decimal(text.replace(",", ""))
    except InvalidOperation:
        raise ValueError(f"cost {text!r} is not a number") from None
    if not value.is_finite() or value < 0 or value != value.quantize(Decimal("0.01")):
        raise ValueError(f"cost {text!r} must be zero or more, with at most 2 decimals")
    if value >= Decimal("1e10"):
        raise ValueError(f"cost {text!r} is too large")
    return value


def _check_existing(items: list, report: ImportReport) -> None:
    serials = {item.serial: line for line, item in items}
    macs = {item.mac: line for line, item in items if item.mac}
    for serial in Item.objects.filter(serial__in=serials).values_list("serial", flat=True):
        report.add(serials[serial], f"serial {serial} is already recorded")
    for mac in Item.objects.filter(mac__in=macs).values_list("mac", flat=True):
        report.add(macs[mac], f"MAC {mac} is already recorded on another item")


def _write(items: list[Item], actor) -> None:
    user, label = audit.describe_actor(actor)
    now = timezone.now()
    with transaction.atomic():
        for item in items:
            item.created_at = item.moved_at = now
        # bulk_create bypasses the audit signals: the Received movements are the record.
        created = Item.objects.bulk_create(items, batch_size=2000)
        Movement.objects.bulk_create(
            [
                Movement(
                    item=item,
                    kind=Movement.Kind.RECEIVED,
                    at=now,
                    actor=user,
                    actor_label=label,
                    to_state=ItemState.IN_STOCK,
                    store=item.store,
                    note="Imported" + (f" from {item.supplier}" if item.supplier else ""),
                )
                for item in created
            ],
            batch_size=2000,
        )
        # One order for every import, so two at once cannot lock thresholds crosswise.
        for model_id, store_id in sorted({(i.model_id, i.store_id) for i in created}):
            services.check_low_stock(model_id, store_id)
