"""Inventory: equipment models and items, stock per store, movements and installations."""

from django.apps import AppConfig


class InventoryConfig(AppConfig):
    name = "inventory"

    def ready(self):
        from inventory import models as m
        from ispops import audit

        # Items change place through services.move(), whose Movement rows are their
        # history; the audit log records edits of their details.
        audit.register(m.EquipmentModel)
        audit.register(m.Store)
        audit.register(m.Item, exclude=["moved_at"])
        audit.register(m.StockThreshold, exclude=["low_since", "notified_at", "in_stock"])
