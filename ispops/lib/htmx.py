"""One helper so a page and its htmx fragment render the same template."""

from django.shortcuts import render


def render_partial(request, template: str, partial: str, context: dict, **kwargs):
    """Render the whole page, or only `partial` of it when htmx asks for that."""
    if getattr(request, "htmx", False) and not request.htmx.boosted:
        return render(request, f"{template}#{partial}", context, **kwargs)
    return render(request, template, context, **kwargs)
