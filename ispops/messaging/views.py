"""Messaging pages: the message templates with a live preview, the SMS gateway settings,
and the log of every SMS and email sent."""

from django.conf import settings as django_settings
from django.contrib import messages
from django.db import transaction
from django.db.models import Q
from django.http import Http404, HttpResponseNotAllowed
from django.shortcuts import redirect, render
from django.template import TemplateSyntaxError
from django.urls import path

from ispops import audit
from ispops.lib.htmx import render_partial
from ispops.lib.pagination import CappedPaginator
from ispops.lib.phones import InvalidPhone, normalise_phone
from ispops.messaging import services
from ispops.messaging.forms import LogFilterForm, SmsSettingsForm, TemplateForm
from ispops.messaging.models import Channel, Message, MessageTemplate, SmsSettings
from ispops.staff.access import roles
from ispops.staff.models import Role
from subscribers.models import Customer

MANAGERS = (Role.OWNER, Role.ADMIN)
LOG_READERS = (Role.OWNER, Role.ADMIN, Role.FINANCE, Role.SUPPORT)


def get_template_for(key: str, channel: str) -> dict:
    """A known template (key and channel) with its default and edited text; else 404."""
    try:
        default_subject, default_body = services.template_text(key, channel)
    except LookupError:
        raise Http404("no such message template") from None
    return {
        "key": key,
        "channel": channel,
        "channel_label": Channel(channel).label,
        "label": services.DEFAULT_TEMPLATES[key].label,
        "variables": services.DEFAULT_TEMPLATES[key].variables,
        "default_subject": default_subject,
        "default_body": default_body,
        "edited": MessageTemplate.objects.filter(key=key, channel=channel).first(),
    }


def messages_visible_to(user):
    """The log as this staff member may see it: messages to customers of their
    branches, and messages to no customer."""
    log = Message.objects.for_log()
    if user.branch_ids() is None:
        return log
    return log.filter(Q(customer__isnull=True) | Q(customer__in=Customer.objects.visible_to(user)))


def _preview(key: str, channel: str, subject: str, body: str) -> dict:
    try:
        subject, body = services.render_text(subject, body, services.sample_context())
    except TemplateSyntaxError as exc:
        return {"preview_error": str(exc)}
    preview = {"preview_subject": subject, "preview_body": body}
    if channel == Channel.SMS:
        preview["sms_length"], preview["sms_parts"] = _sms_size(body)
    return preview


def _sms_size(text: str) -> tuple[int, int]:
    """Characters and SMS parts: 160/153 for plain text, 70/67 once any character
    needs Unicode (roughly: anything outside ASCII)."""
    single, multi = (160, 153) if text.isascii() else (70, 67)
    length = len(text)
    return length, 1 if length <= single else -(-length // multi)


@roles(*MANAGERS)
def template_list(request):
    return render(request, "messaging/templates.html", {"rows": services.template_overview()})


@roles(*MANAGERS)
def template_edit(request, key, channel):
    template = get_template_for(key, channel)
    edited = template["edited"]
    initial = {
        "subject": edited.subject if edited else template["default_subject"],
        "body": edited.body if edited else template["default_body"],
        "is_active": edited.is_active if edited else True,
    }
    form = TemplateForm(request.POST or None, initial=initial, channel=channel)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            services.save_template(
                key,
                channel,
                subject=data.get("subject", ""),
                body=data["body"],
                is_active=data["is_active"],
                actor=request.user,
            )
        except services.MessagingError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Saved the {template['label'].lower()} text.")
            return redirect("messaging:template_edit", key, channel)
    source = form.data if form.is_bound else initial
    context = {
        "template": template,
        "form": form,
        **_preview(key, channel, source.get("subject", ""), source.get("body", "")),
    }
    return render(request, "messaging/template_edit.html", context)


@roles(*MANAGERS)
def template_preview(request, key, channel):
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    get_template_for(key, channel)
    context = _preview(key, channel, request.POST.get("subject", ""), request.POST.get("body", ""))
    context["template"] = {"channel": channel}
    return render(request, "messaging/template_edit.html#preview", context)


@roles(*MANAGERS)
def template_reset(request, key, channel):
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    template = get_template_for(key, channel)
    if services.reset_template(key, channel, actor=request.user):
        messages.success(request, f"The {template['label'].lower()} text is the default again.")
    return redirect("messaging:template_edit", key, channel)


@roles(*MANAGERS)
def sms_settings(request):
    current = SmsSettings.load()
    form = SmsSettingsForm(request.POST or None, instance=current)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic(), audit.acting_as(request.user):
            form.save()
        messages.success(request, "Saved.")
        return redirect("messaging:sms_settings")
    return render(
        request,
        "messaging/sms_settings.html",
        {
            "form": form,
            "settings": current,
            "key_set": bool(current.api_key),
            # Whether SMS reach phones: the console gateway only writes them to the log.
            "sms_delivers": (current.backend or django_settings.SMS_BACKEND)
            != SmsSettings.Backend.CONSOLE,
        },
    )


@roles(*LOG_READERS)
def message_log(request):
    form = LogFilterForm(request.GET or None)
    log = messages_visible_to(request.user)
    if form.is_valid():
        data = form.cleaned_data
        if data["state"]:
            log = log.filter(state=data["state"])
        if data["channel"]:
            log = log.filter(channel=data["channel"])
        if data["q"].strip():
            log = log.filter(_search(data["q"].strip()))
    page = CappedPaginator(log, 50).get_page(request.GET.get("page"))
    return render_partial(
        request,
        "messaging/log.html",
        "results",
        {
            "form": form,
            "page": page,
            "can_manage": request.user.role in MANAGERS,
            "can_campaign": request.user.role in LOG_READERS,
        },
    )


def _search(term: str) -> Q:
    """A phone number (any usual spelling) or email matches the address it went to;
    anything else finds customers by name, account or phone."""
    if "@" in term:
        return Q(to__iexact=term)
    try:
        return Q(to=normalise_phone(term))
    except InvalidPhone:
        pass
    return Q(customer__in=Customer.objects.search(term).values("pk"))


urls = [
    path("messages/", message_log, name="log"),
    path("messages/templates/", template_list, name="templates"),
    path("messages/templates/<slug:key>/<slug:channel>/", template_edit, name="template_edit"),
    path(
        "messages/templates/<slug:key>/<slug:channel>/preview/",
        template_preview,
        name="template_preview",
    ),
    path(
        "messages/templates/<slug:key>/<slug:channel>/reset/",
        template_reset,
        name="template_reset",
    ),
    path("messages/settings/", sms_settings, name="sms_settings"),
]
