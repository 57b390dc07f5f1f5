"""Models of the subscribers app (filled by its issue)."""
