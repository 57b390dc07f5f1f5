"""Plans pages."""

urls = []
