"""Who reads reports, and what of: owners, admins and finance (CONTRACT.md); a
branch-limited one sees only their branches' figures, everywhere (issue 15)."""

from ispops.staff.models import Role

READERS = (Role.OWNER, Role.ADMIN, Role.FINANCE)


def branch_ids(user) -> list[int] | None:
    """The branches the user's figures are limited to; None: all of the ISP's."""
    ids = user.branch_ids()
    return None if ids is None else sorted(ids)
