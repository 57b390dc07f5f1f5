from django.apps import AppConfig


class SubscribersConfig(AppConfig):
    name = "subscribers"

    def ready(self):
        from ispops import audit
        from subscribers import models as m

        audit.register(m.Plan)
        audit.register(m.NetworkSite)
        audit.register(m.Customer, exclude=["search"])
        audit.register(m.ServiceAccount, secret=["password"])
        audit.register(m.AddOn)
        audit.register(m.Discount)
        audit.register(m.Installation)
        audit.register(m.SubscriberSettings)
        from ispops.staff import home
        from subscribers import services

        home.add_figures(services.home_figures, order=10)
        from subscribers import settings_section

        settings_section.register()
