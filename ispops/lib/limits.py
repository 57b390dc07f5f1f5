"""The largest request body anyone may send. Django spools uploaded files to disk before
any form, role or CSRF check sees them, so the limit is checked first, on the declared
length: a larger request gets 413 without its body being read."""

from django.conf import settings
from django.http import HttpResponse


class RequestSizeLimitMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return HttpResponse("Bad Content-Length.", status=400, content_type="text/plain")
        limit = settings.MAX_REQUEST_BYTES
        if length > limit:
            reason = f"Request too large: at most {limit // (1024 * 1024)} MB."
            return HttpResponse(reason, status=413, content_type="text/plain")
        return self.get_response(request)
