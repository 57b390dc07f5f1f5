from django.apps import AppConfig


class HotspotConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "hotspot"

    def ready(self):
        # A paid STK push from the captive page buys a package, not a customer's
        # credit: payments hands such payments to the purpose (payments.purposes).
        from hotspot import (  # noqa: F401 (tasks_captive registers its task)
            bypass_sales,
            captive_purchase,
            tasks_captive,
        )
        from hotspot.models import HotspotSettings
        from ispops import audit
        from payments import purposes

        audit.register(HotspotSettings)
        from hotspot import settings_section

        settings_section.register()

        purposes.register(captive_purchase.PURPOSE, on_paid=captive_purchase.purchase_paid)
        # A paid push from "Connect a TV or camera" lets a device through (a bypass).
        purposes.register(bypass_sales.PURPOSE, on_paid=bypass_sales.sale_paid)
        # A voucher agent's home is their own cards and ledger, nothing of the ISP's.
        from hotspot.views_agents import my_page
        from ispops.staff import home
        from ispops.staff.models import Role

        home.replace_home(Role.AGENT, my_page)
