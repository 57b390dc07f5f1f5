"""Models of the billing app (filled by its issue)."""
