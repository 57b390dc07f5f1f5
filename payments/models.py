"""Models of the payments app (filled by its issue)."""
