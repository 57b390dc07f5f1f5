"""Billing: the customer ledger, invoices and prepaid expiry, proration, billing runs and
dunning.
"""
