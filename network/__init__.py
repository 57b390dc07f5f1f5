"""Network: MikroTik routers, provisioning jobs, drift between router and billing, monitoring
and alerts.
"""
