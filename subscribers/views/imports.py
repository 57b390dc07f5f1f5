"""Imports pages."""

urls = []
