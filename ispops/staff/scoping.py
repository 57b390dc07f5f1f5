"""Branch scoping: which rows a branch-limited staff member may see, or choose in a form.

One home for the rule, so a list, a detail page and a form's choices agree: staff with
no branch limit see everything; staff limited to some branches see the rows of those
branches, and rows that belong to no branch (a router or site serving the whole ISP)
unless the caller says such rows are not shared.

A form that takes its choices from these querysets also refuses a forged POST of
another branch's id: a ModelChoiceField validates against its queryset.
"""

from django.db.models import Q, QuerySet


def in_branches_of(user, queryset: QuerySet, field: str = "branch", shared: bool = True):
    """Rows of `queryset` whose `field` (a path to a Branch) is one of `user`'s
    branches; with `shared`, rows of no branch too. Everything for unlimited staff."""
    allowed = user.branch_ids()
    if allowed is None:
        return queryset
    mine = Q(**{f"{field}__in": allowed})
    if shared:
        mine |= Q(**{f"{field}__isnull": True})
    return queryset.filter(mine)


def staff_of_branches_of(user, queryset: QuerySet):
    """Staff who work in `user`'s branches: those with no branch limit (they work
    everywhere) and those sharing one of `user`'s branches."""
    allowed = user.branch_ids()
    if allowed is None:
        return queryset
    return queryset.filter(Q(branches__isnull=True) | Q(branches__in=allowed)).distinct()
