"""One settings page (/settings/) with a section per area: company and branding,
billing, dunning, M-Pesa, SMS and email, tickets, account numbers, hotspot, report
rules; each area adds its own (`add_section`, in its AppConfig.ready()).

Each section is its own form, posted back to /settings/ with `section=<key>` and saved
on its own through the same forms and services as the area's own settings page (those
URLs, e.g. /billing/settings/, keep working). A saved section comes back to
/settings/#<key>; a refused one shows the page again with that form's errors (400).

The page only reads: every SettingsRow.load() takes the stored row (or inserts the
defaults without an audit entry), so opening it records nothing.
"""

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.utils.safestring import mark_safe

from ispops import audit
from ispops.staff.access import ALL_STAFF, MANAGERS, roles


class Section:
    """One area's settings: `context` builds its form (bound to a post, or not) and what
    the fragment shows; `save` stores a valid post and says False when it is refused."""

    key = ""
    title = ""
    template = ""
    roles = MANAGERS
    multipart = False

    def shown_to(self, user) -> bool:
        return user.role in self.roles

    def context(self, request, data=None, files=None) -> dict:
        raise NotImplementedError

    def save(self, request, context) -> bool:
        raise NotImplementedError


class FormSection(Section):
    """A section that is one settings form: saved, audited, in one transaction."""

    def save(self, request, context):
        form = context["form"]
        if not form.is_valid():
            return False
        with transaction.atomic(), audit.acting_as(request.user):
            form.save()
        return True


def present(form, *names) -> list:
    """The bound fields of `names` the form has."""
    return [form[name] for name in names if name in form.fields]


# Each app adds its sections in its AppConfig.ready() (billing, payments, messaging,
# tickets, subscribers, hotspot, reports), so this page imports none of them.
_sections: list[tuple[int, Section]] = []


def add_section(section: Section, order: int) -> None:
    """Show `section` on the page, in `order` (a key is added once)."""
    if any(s.key == section.key for _, s in _sections):
        return
    _sections.append((order, section))
    _sections.sort(key=lambda item: item[0])


def sections_for(user) -> list[Section]:
    return [s for _, s in _sections if s.shown_to(user)]


@roles(*ALL_STAFF)
def settings_page(request):
    mine = sections_for(request.user)
    if not mine:
        raise PermissionDenied("No settings here are yours to change.")
    bound, status = None, 200
    if request.method == "POST":
        key = request.POST.get("section", "")
        section = next((s for s in mine if s.key == key), None)
        if section is None:
            return render(
                request,
                "settings/page.html",
                {"sections": [], "error": "No such settings section."},
                status=400,
            )
        context = section.context(request, request.POST, request.FILES)
        if section.save(request, context):
            messages.success(request, f"{section.title} saved.")
            return redirect(f"{reverse('settings')}#{section.key}")
        bound, status = (section, context), 400
    rendered = []
    for section in mine:
        context = bound[1] if bound and bound[0] is section else section.context(request)
        context["section"] = section
        # Our own template's output, escaped as it was rendered.
        html = mark_safe(render_to_string(section.template, context, request=request))
        rendered.append({"section": section, "html": html})
    return render(request, "settings/page.html", {"sections": rendered}, status=status)


urls = [path("settings/", settings_page, name="settings")]
