"""The staff home page's parts, added by the apps that own them.

Staff sits below the domain apps (subscribers, network, reports, hotspot): the home page
must show their figures without staff importing them. Each app adds its part in its
AppConfig.ready() (`add_figures`, `replace_home`), and the home view asks here.

- figures: a function (user) -> list of {label, value, url?, ...}, for the given roles
  (None: every staff role), in `order`, in a `section` ("figures": the key figures;
  "month": the owner's month, reports.home);
- a role's whole home replaced by a view of its own (a voucher agent's page).
"""

from collections.abc import Callable
from dataclasses import dataclass

FIGURES, MONTH = "figures", "month"


@dataclass(frozen=True)
class _Part:
    section: str
    order: int
    roles: frozenset | None
    figures: Callable


_parts: list[_Part] = []
_homes: dict[str, Callable] = {}


def add_figures(figures: Callable, *, order: int, roles=None, section: str = FIGURES) -> None:
    """Show `figures(user)` on the home page of staff with one of `roles`."""
    if any(p.figures is figures for p in _parts):
        return  # ready() may run twice (tests reload apps); a part is added once
    _parts.append(_Part(section, order, None if roles is None else frozenset(roles), figures))
    _parts.sort(key=lambda p: p.order)


def replace_home(role: str, view: Callable) -> None:
    """Staff with `role` get `view(request)` as their home."""
    _homes[role] = view


def home_of(role: str) -> Callable | None:
    return _homes.get(role)


def figures(user, section: str = FIGURES) -> list[dict]:
    """The figures of `section` for `user`, in order."""
    out = []
    for part in _parts:
        if part.section == section and (part.roles is None or user.role in part.roles):
            out += part.figures(user)
    return out
