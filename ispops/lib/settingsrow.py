"""A per-ISP settings table: one row (pk 1) in each ISP's schema, made with its field
defaults the first time it is read."""

from django.db import models


class SettingsRow(models.Model):
    class Meta:
        abstract = True

    @classmethod
    def load(cls):
        """The ISP's settings (created with the defaults if there is no row yet)."""
        obj, _ = cls.objects.get_or_create(pk=1)
        return obj
