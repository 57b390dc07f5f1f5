"""Pipeline pages."""

urls = []
