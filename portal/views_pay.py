"""The portal's pay pages (being built; see issue 13)."""

urls = []
