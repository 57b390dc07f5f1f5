"""Inventory: equipment models, stores, items with their serial and MAC, the movements
that take an item from purchase to a customer, and low-stock thresholds.

An item's place (state, store, technician holding it, service account it is installed
at) changes only through inventory.services.move(), which locks the item row and writes
a Movement in the same transaction: the movements are the item's history.
"""

import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

_MAC_HEX = re.compile(r"^[0-9A-F]{12}$")


def normalise_serial(raw: str) -> str:
    """Serials are compared without case or spaces: ' hwtc 12ab ' -> 'HWTC12AB'."""
    return re.sub(r"\s+", "", raw or "").upper()


def normalise_mac(raw: str) -> str:
    """'aa-bb-cc-dd-ee-ff', 'aabb.ccdd.eeff' or 'AABBCCDDEEFF' -> 'AA:BB:CC:DD:EE:FF';
    '' stays ''. Raises ValidationError for anything that is not 12 hex digits."""
    text = (raw or "").strip()
    if not text:
        return ""
    digits = re.sub(r"[\s:.\-]", "", text).upper()
    if not _MAC_HEX.match(digits):
        raise ValidationError(f"{text!r} is not a MAC address (12 hex digits)")
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


class EquipmentModel(models.Model):
    """A make and model of equipment ("Huawei HG8145V5"), of one kind."""

    class Kind(models.TextChoices):
        CPE_ROUTER = "cpe_router", "CPE router"
        ONT = "ont", "ONT"
        RADIO = "radio", "Radio"
        ANTENNA = "antenna", "Antenna"
        SWITCH = "switch", "Switch"
        CABLE = "cable", "Cable"
        OTHER = "other", "Other"

    name = models.CharField(max_length=120, unique=True)
    kind = models.CharField(max_length=12, choices=Kind.choices)
    manufacturer = models.CharField(max_length=80, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        verbose_name = "equipment model"

    def __str__(self):
        return self.name


class Store(models.Model):
    """A place equipment is kept, belonging to a branch."""

    name = models.CharField(max_length=120, unique=True)
    branch = models.ForeignKey("staff.Branch", on_delete=models.PROTECT, related_name="stores")
    address = models.CharField(max_length=255, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class ItemState(models.TextChoices):
    IN_STOCK = "in_stock", "In stock"
    ISSUED = "issued", "Issued to technician"
    INSTALLED = "installed", "Installed"
    FAULTY = "faulty", "Faulty"
    WRITTEN_OFF = "written_off", "Written off"


class ItemQuerySet(models.QuerySet):
    def visible_to(self, user):
        """Technicians see what is issued to them; staff limited to branches see the
        items of their branches' stores; everyone else sees every item."""
        from ispops.staff.models import Role

        if user.role == Role.TECHNICIAN:
            return self.filter(holder=user, state=ItemState.ISSUED)
        allowed = user.branch_ids()
        return self if allowed is None else self.filter(store__branch_id__in=allowed)

    def for_list(self):
        return self.select_related("model", "store", "holder", "service_account__customer")


class Item(models.Model):
    State = ItemState

    model = models.ForeignKey(EquipmentModel, on_delete=models.PROTECT, related_name="items")
    # Stored normalised (normalise_serial), so the unique constraint ignores case/spaces.
    serial = models.CharField(max_length=64)
    mac = models.CharField("MAC address", max_length=17, blank=True)
    state = models.CharField(max_length=12, choices=State.choices, default=State.IN_STOCK)
    # The store that keeps the item: where it is while in stock or faulty, and where it
    # was last kept while it is out with a technician or a customer.
    store = models.ForeignKey(Store, on_delete=models.PROTECT, related_name="items")
    holder = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="held_items",
    )
    service_account = models.ForeignKey(
        "subscribers.ServiceAccount",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="equipment",
    )
    supplier = models.CharField(max_length=120, blank=True)
    purchased_on = models.DateField(null=True, blank=True)
    cost = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    moved_at = models.DateTimeField(default=timezone.now)

    objects = ItemQuerySet.as_manager()

    class Meta:
        ordering = ["model__name", "serial"]
        constraints = [
            # One item per serial in an ISP (each ISP has its own schema, so another
            # ISP may hold the same serial). Serials are stored normalised.
            models.UniqueConstraint(fields=["serial"], name="item_serial_unique"),
            models.UniqueConstraint(fields=["mac"], condition=~Q(mac=""), name="item_mac_unique"),
            # The place matches the state: only an installed item has a service account
            # (so it is at one customer at most), only an issued one a holder.
            models.CheckConstraint(
                condition=(
                    Q(
                        state=ItemState.INSTALLED,
                        service_account__isnull=False,
                        holder__isnull=True,
                    )
                    | Q(state=ItemState.ISSUED, holder__isnull=False, service_account__isnull=True)
                    | Q(
                        state__in=[ItemState.IN_STOCK, ItemState.FAULTY, ItemState.WRITTEN_OFF],
                        holder__isnull=True,
                        service_account__isnull=True,
                    )
                ),
                name="item_place_matches_state",
            ),
        ]
        indexes = [
            # Stock counts per store and model (the stock page and the low-stock check).
            models.Index(fields=["store", "model", "state"], name="item_stock"),
        ]

    def __str__(self):
        return f"{self.model} {self.serial}"


class Movement(models.Model):
    """One change of an item's place or state, with who and when."""

    class Kind(models.TextChoices):
        RECEIVED = "received", "Received"
        ISSUED = "issued", "Issued to technician"
        INSTALLED = "installed", "Installed"
        RETURNED = "returned", "Returned to store"
        FAULTY = "faulty", "Marked faulty"
        WRITTEN_OFF = "written_off", "Written off"

    item = models.ForeignKey(Item, on_delete=models.PROTECT, related_name="movements")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    at = models.DateTimeField(default=timezone.now)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    actor_label = models.CharField(max_length=200)
    from_state = models.CharField(max_length=12, choices=ItemState.choices, blank=True)
    to_state = models.CharField(max_length=12, choices=ItemState.choices)
    # Where the item went.
    store = models.ForeignKey(Store, on_delete=models.PROTECT, related_name="+")
    holder = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    service_account = models.ForeignKey(
        "subscribers.ServiceAccount",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="equipment_movements",
    )
    note = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["at", "id"]
        # An item's history page reads its movements in order.
        indexes = [models.Index(fields=["item", "at"], name="movement_item_at")]

    def __str__(self):
        return f"{self.get_kind_display()}: {self.item_id} at {self.at:%Y-%m-%d %H:%M}"


class StockThreshold(models.Model):
    """Alert when a store holds fewer than `minimum` items of a model in stock.

    `low_since` is set when the stock drops below the minimum and cleared when it is
    back: an alert goes out once per dip (the set is a conditional UPDATE), and
    `notified_at` records that it went out."""

    model = models.ForeignKey(EquipmentModel, on_delete=models.CASCADE, related_name="thresholds")
    store = models.ForeignKey(Store, on_delete=models.CASCADE, related_name="thresholds")
    minimum = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    low_since = models.DateTimeField(null=True, blank=True)
    notified_at = models.DateTimeField(null=True, blank=True)
    in_stock = models.PositiveIntegerField(default=0, help_text="At the last check.")

    class Meta:
        ordering = ["store__name", "model__name"]
        constraints = [
            # set_threshold() updates the one row of a model and store.
            models.UniqueConstraint(fields=["model", "store"], name="threshold_one_per_store"),
        ]

    def __str__(self):
        return f"{self.model} at {self.store}: at least {self.minimum}"
