"""Customers pages."""

urls = []
