"""Tenancy: the ISPs on this installation (one PostgreSQL schema each) and their hosts."""
