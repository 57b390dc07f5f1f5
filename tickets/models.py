"""Models of the tickets app (filled by its issue)."""
