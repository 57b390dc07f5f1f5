"""The tickets section of the one settings page (ispops.staff.settings_page): the
ticket settings and the SLA table."""

from django.db import transaction

from ispops import audit
from ispops.staff.settings_page import Section, add_section
from tickets import services
from tickets.forms import SlaTableForm, TicketSettingsForm
from tickets.models import TicketSettings


class TicketsSection(Section):
    key, title, template = "tickets", "Tickets", "settings/_tickets.html"

    def context(self, request, data=None, files=None):
        return {
            "form": TicketSettingsForm(data, instance=TicketSettings.load()),
            "table": SlaTableForm(data, targets=services.sla_targets()),
        }

    def save(self, request, context):
        form, table = context["form"], context["table"]
        if not (form.is_valid() and table.is_valid()):
            return False
        with transaction.atomic(), audit.acting_as(request.user):
            form.save()
            services.save_sla_targets(table.values(), actor=request.user)
        return True


def register() -> None:
    add_section(TicketsSection(), 60)
