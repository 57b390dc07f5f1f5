"""Network: MikroTik routers (the connection details live here; provisioning, drift
and monitoring come with the network issue)."""

from django.db import models
from django.utils import timezone

from ispops.lib.crypto import EncryptedTextField


class Router(models.Model):
    class Status(models.TextChoices):
        UNKNOWN = "unknown", "Not checked"
        ONLINE = "online", "Online"
        OFFLINE = "offline", "Offline"

    name = models.CharField(max_length=80, unique=True)
    host = models.CharField(max_length=255)
    port = models.PositiveIntegerField(default=8728)
    username = models.CharField(max_length=64)
    password = EncryptedTextField(blank=True)
    use_tls = models.BooleanField(default=False)
    branch = models.ForeignKey(
        "staff.Branch", null=True, blank=True, on_delete=models.PROTECT, related_name="routers"
    )
    site = models.ForeignKey(
        "subscribers.NetworkSite",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="routers",
    )
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.UNKNOWN)
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name
