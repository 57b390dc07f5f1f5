"""Demo inventory (seed_demo): equipment models, a store per branch, the equipment the
demo's installations recorded (installed at their accounts, or issued to the
technician for jobs not done yet), spare stock with minimums, and one model under its
minimum so the low-stock alert shows. Deterministic; run once."""

from django.utils import timezone

from inventory import services
from inventory.models import EquipmentModel, Item, Store
from ispops.staff.models import Branch, Role, User
from subscribers.models import Installation

MODELS = [
    ("Huawei HG8145V5", "ont", "Huawei"),
    ("TP-Link Archer C6", "cpe_router", "TP-Link"),
    ("Ubiquiti LiteBeam 5AC Gen2", "radio", "Ubiquiti"),
    ("MikroTik hAP ac2", "cpe_router", "MikroTik"),
    ("Cat6 outdoor cable, 50 m", "cable", ""),
]
DONE = {"installed", "activated", "confirmed"}


def seed(out=None) -> None:
    say = out or (lambda text: None)
    if EquipmentModel.objects.exists():
        return
    actor = "seed_demo"
    models = {
        name: EquipmentModel.objects.create(name=name, kind=kind, manufacturer=maker)
        for name, kind, maker in MODELS
    }
    stores = [
        Store.objects.create(name=f"{branch.name} store", branch=branch)
        for branch in Branch.objects.order_by("id")
    ]
    if not stores:
        return
    main = stores[0]
    technician = User.objects.filter(role=Role.TECHNICIAN, is_active=True).first()
    router, radio = models["TP-Link Archer C6"], models["Ubiquiti LiteBeam 5AC Gen2"]
    placed = 0
    for inst in Installation.objects.exclude(equipment_serials=[]).select_related(
        "service_account"
    ):
        for serial in inst.equipment_serials:
            kind = radio if serial.startswith("RAD") else router
            try:
                item = services.receive_item(
                    actor=actor, model=kind, store=main, serial=serial, supplier="Demo supplier"
                )
                if inst.stage in DONE:
                    services.move(
                        item, "installed", actor=actor, service_account=inst.service_account
                    )
                elif technician is not None:
                    services.move(item, "issued", actor=actor, holder=technician)
                placed += 1
            except services.InventoryError:
                continue  # a serial recorded twice by the demo: keep the first
    year = timezone.localdate().year
    spares = [
        ("Huawei HG8145V5", "HWT", 24),
        ("TP-Link Archer C6", "TPL", 15),
        ("MikroTik hAP ac2", "MKT", 6),
    ]
    for k, (name, prefix, count) in enumerate(spares):
        for n in range(count):
            services.receive_item(
                actor=actor,
                model=models[name],
                store=stores[n % len(stores)],
                serial=f"{prefix}{year}{n:04d}",
                mac=f"4C:5E:0C:{k:02X}:{(n >> 8) & 255:02X}:{n & 255:02X}",
                supplier="Demo supplier",
            )
    for name, minimum in (
        ("Huawei HG8145V5", 5),
        ("TP-Link Archer C6", 4),
        ("MikroTik hAP ac2", 10),
    ):
        services.set_threshold(actor=actor, model=models[name], store=main, minimum=minimum)
    say(f"  {Item.objects.count()} equipment items ({placed} from installations)")
