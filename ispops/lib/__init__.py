"""Helpers with no models, shared by every app: env, crypto, phones, money, htmx."""
