"""Router pages."""

urls = []
