"""An offline Safaricom Daraja sandbox for tests and `manage.py daraja_simulator`."""

from payments.simulator.server import STK_OUTCOMES, DarajaError, DarajaSimulator, stk_password

__all__ = ["STK_OUTCOMES", "DarajaError", "DarajaSimulator", "stk_password"]
