"""Staff pages for payments (being built)."""

urls = []
