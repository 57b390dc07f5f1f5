"""A per-ISP settings table: one row (pk 1) in each ISP's schema, made with its field
defaults the first time it is read."""

from django.db import models


class SettingsRow(models.Model):
    class Meta:
        abstract = True

    @classmethod
    def load(cls):
        """The ISP's settings (created with the defaults if there is no row yet).

        The defaults row is inserted without save() and its signals: nobody changed a
        setting, so opening a settings page writes no audit entry (get_or_create did,
        as a "create" by whoever first looked). Two first readers at once both get the
        one row (ignore_conflicts)."""
        obj = cls.objects.filter(pk=1).first()
        if obj is None:
            cls.objects.bulk_create([cls(pk=1)], ignore_conflicts=True)
            obj = cls.objects.get(pk=1)
        return obj
