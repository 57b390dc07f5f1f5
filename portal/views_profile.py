"""The portal's profile pages (being built; see issue 13)."""

urls = []
