"""Subscribers: customers, service accounts, plans, network sites, the lead-to-activation
workflow and technicians' jobs.
"""
