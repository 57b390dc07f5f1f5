"""Attributes audited changes made during a request to the logged-in user."""

from ispops.audit.registry import acting_as


class AuditActorMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            with acting_as(user):
                return self.get_response(request)
        return self.get_response(request)
