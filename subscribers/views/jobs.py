"""Jobs pages."""

urls = []
