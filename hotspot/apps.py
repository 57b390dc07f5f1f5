from django.apps import AppConfig


class HotspotConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "hotspot"
