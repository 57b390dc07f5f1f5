from django.apps import AppConfig


class NetworkConfig(AppConfig):
    name = "network"

    def ready(self):
        from ispops import audit
        from network.models import Router

        audit.register(Router, secret=["password"])
        from ispops.staff import home
        from ispops.staff.models import Role
        from network import services

        home.add_figures(
            services.home_figures, order=20, roles=(Role.OWNER, Role.ADMIN, Role.SUPPORT)
        )
