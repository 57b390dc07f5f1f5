from django.apps import AppConfig


class NetworkConfig(AppConfig):
    name = "network"

    def ready(self):
        from ispops import audit
        from network.models import Router

        audit.register(Router, secret=["password"])
