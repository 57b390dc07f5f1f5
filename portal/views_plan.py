"""The portal's plan pages (being built; see issue 13)."""

urls = []
