from django.apps import AppConfig


class StaffConfig(AppConfig):
    name = "ispops.staff"
    label = "staff"
    verbose_name = "Staff"

    def ready(self):
        from ispops import audit
        from ispops.staff.models import Branch, User

        audit.register(User, exclude=["last_login", "password"])
        audit.register(Branch)
        from ispops.staff import home, services

        home.add_figures(services.home_figures, order=90)
