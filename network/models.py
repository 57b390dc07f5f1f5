"""Models of the network app (filled by its issue)."""
