"""Staff pages of the subscribers app, one module per area; each module ends with the
`urls` it serves, which subscribers/urls.py puts together."""
