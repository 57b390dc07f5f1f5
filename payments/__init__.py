"""Payments: M-Pesa (Daraja) callbacks and client, cash and bank payments, reconciliation and
allocation.
"""
