from django.apps import AppConfig


class HotspotConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "hotspot"

    def ready(self):
        # A paid STK push from the captive page buys a package, not a customer's
        # credit: payments hands such payments to the purpose (payments.purposes).
        from hotspot import captive_purchase, tasks_captive  # noqa: F401 (registers its task)
        from payments import purposes

        purposes.register(captive_purchase.PURPOSE, on_paid=captive_purchase.purchase_paid)
