from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "portal"

    def ready(self):
        # A paid STK push for a data top-up buys the pack, its sale paid by the payment,
        # rather than crediting the account (payments.purposes, portal.data_top_up).
        from payments import purposes
        from portal import data_top_up

        purposes.register(data_top_up.PURPOSE, on_paid=data_top_up.paid)
