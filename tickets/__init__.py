"""Tickets: support tickets with SLAs, assignment and escalation, outage tickets."""
