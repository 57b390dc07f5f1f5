"""Sites pages."""

urls = []
