"""Inventory: equipment models and items, stock per store, movements and installations."""
