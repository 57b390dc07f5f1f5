"""The portal's invoices pages (being built; see issue 13)."""

urls = []
