from django.apps import AppConfig


class TenancyConfig(AppConfig):
    name = "ispops.tenancy"
    label = "tenancy"
    verbose_name = "ISPs"

    def ready(self):
        from ispops import audit
        from ispops.tenancy.models import Domain, Isp

        audit.register(Isp)
        audit.register(Domain)
