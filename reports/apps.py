"""Reports: the daily subscription snapshot and what is read from it and from billing,
payments, subscribers and tickets (MRR movement, rates, collections, aged receivables,
revenue, operations) for the owner's home and /reports/."""

from django.apps import AppConfig


class ReportsConfig(AppConfig):
    name = "reports"

    def ready(self):
        from ispops import audit
        from reports import models as m

        audit.register(m.ReportSettings)
        from ispops.staff import home as staff_home
        from reports import home, settings_section
        from reports.access import READERS

        staff_home.add_figures(
            home.month_figures, order=10, roles=READERS, section=staff_home.MONTH
        )
        settings_section.register()
