"""What an STK push may be for besides a customer's account: a small registry that
higher apps fill from their AppConfig.ready() (the hotspot registers "hotspot": a paid
push buys a package for a phone that is nobody's account). payments never imports
them; it only looks a purpose up by the name stored on the StkRequest.

A purpose's `on_paid(payment)` runs in the worker that credits the payment, inside its
transaction, with the payment row locked and still "received": it runs once per
payment (the payment then becomes "credited" to that purpose), and a duplicate
callback, which finds the receipt stored already, never reaches it again. Side effects
(router work, SMS) belong in transaction.on_commit there, as everywhere.
"""

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Purpose:
    name: str
    on_paid: Callable  # (payments.models.Payment) -> None


_registry: dict[str, Purpose] = {}


def register(name: str, *, on_paid: Callable) -> Purpose:
    """Declare a purpose (idempotent for the same handler: ready() may run twice)."""
    if not name or len(name) > 20:
        raise ValueError("a purpose's name is 1-20 characters")
    known = _registry.get(name)
    if known is not None and known.on_paid is not on_paid:
        raise ValueError(f"purpose {name!r} is registered already")
    _registry[name] = Purpose(name, on_paid)
    return _registry[name]


def get(name: str) -> Purpose:
    """The registered purpose; LookupError for a name nobody registered (a payment
    for it stays "received" with the error recorded, for the sweep to retry)."""
    try:
        return _registry[name]
    except KeyError:
        raise LookupError(f"no payment purpose {name!r} is registered") from None
