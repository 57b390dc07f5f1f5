"""Tickets: support tickets with SLAs, assignment and escalation, outage tickets."""

from django.apps import AppConfig


class TicketsConfig(AppConfig):
    name = "tickets"

    def ready(self):
        from ispops import audit
        from tickets import models as m

        audit.register(m.Ticket)
        audit.register(m.SlaTarget)
        audit.register(m.TicketSettings)
        from tickets import settings_section

        settings_section.register()
