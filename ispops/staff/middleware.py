"""Enforces the audience every view declares (ispops.staff.access)."""

import logging
import time

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.http import Http404, HttpResponseRedirect
from django.urls import reverse

from ispops.staff.access import (
    LOGGED_IN,
    PLATFORM,
    PORTAL_SESSION_KEY,
    PUBLIC,
    SUBSCRIBER,
    declared_roles,
)

log = logging.getLogger(__name__)


class RoleRequiredMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        audience = declared_roles(view_func)
        if audience is None:
            # Static files served by runserver in development have no declaration.
            if settings.DEBUG and request.path.startswith(settings.STATIC_URL):
                return None
            log.error("view %s declares no roles; refused", view_func.__qualname__)
            raise PermissionDenied("This page declares no roles.")
        if audience == PUBLIC:
            return None

        on_public_host = connection.schema_name == "public"
        if audience == SUBSCRIBER:
            # The portal: its own session key, never request.user (a staff login).
            if on_public_host:
                raise Http404
            if not request.session.get(PORTAL_SESSION_KEY):
                return HttpResponseRedirect(reverse("portal:home"))
            return None
        if audience == LOGGED_IN:
            pass
        elif audience == PLATFORM:
            # Platform pages do not exist on an ISP's host.
            if not on_public_host:
                raise Http404
        elif on_public_host:
            raise Http404

        user = request.user
        if not user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if audience == LOGGED_IN:
            allowed = user.is_active
        elif audience == PLATFORM:
            allowed = user.is_active and user.is_superuser
        else:
            allowed = user.is_active and user.role in audience
        if not allowed:
            raise PermissionDenied("Your role does not allow this page.")
        return None


class SlidingSessionMiddleware:
    """Idle expiry without a write per request: a session is re-saved (and its expiry
    pushed back by SESSION_COOKIE_AGE) once every SESSION_RENEW_SECONDS of activity."""

    KEY = "_renewed"

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        session = request.session
        if session.session_key:
            now = int(time.time())
            if now - session.get(self.KEY, 0) >= settings.SESSION_RENEW_SECONDS:
                session[self.KEY] = now
        return self.get_response(request)
