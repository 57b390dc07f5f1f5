"""The portal's claim pages (being built; see issue 13)."""

urls = []
