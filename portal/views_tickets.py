"""The portal's tickets pages (being built; see issue 13)."""

urls = []
