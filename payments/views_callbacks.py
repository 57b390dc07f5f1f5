"""Safaricom's callbacks. Each request is stored as it came (body, headers, source
address, time) in the transaction that stores its payment, or on its own if anything
fails, then answered at once; crediting happens in a worker, so Safaricom gets its
answer in milliseconds. Only a callback taken whole is "Accepted": one stored raw
for the sweep gets "Received" (services.STORED_RAW), an unusable body a 400 with the
reason.

Safaricom signs nothing: the path carries the ISP's secret token (compared in constant
time), and an optional allowlist limits the source addresses. A wrong token is a 404
with nothing stored but a security log line.
"""

import hmac
import logging

from django.http import Http404, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from ispops.staff.access import public
from ispops.staff.forms import client_ip
from payments import services
from payments.models import Callback

security_log = logging.getLogger("ispops.security")

ACCEPTED = {"ResultCode": 0, "ResultDesc": "Accepted"}
KEPT_HEADERS = ("Content-Type", "User-Agent", "X-Forwarded-For", "X-Real-Ip", "Host")


def _authenticate(request, token: str) -> None:
    access = services.callback_access()
    ip = client_ip(request)
    if access is None or not hmac.compare_digest(token.encode(), access[0].encode()):
        security_log.warning("M-Pesa callback with a wrong token from %s", ip)
        raise Http404
    if not services.source_allowed(access[1], ip):
        security_log.warning("M-Pesa callback from %s, not on the allowlist", ip)
        raise Http404


def _declared_length(request) -> int:
    """The Content-Length the sender declared; a malformed one counts as too long."""
    declared = request.META.get("CONTENT_LENGTH") or "0"
    return int(declared) if declared.isascii() and declared.isdecimal() else services.MAX_BODY + 1


def _handle(request, token: str, kind: str):
    if request.method != "POST":
        return JsonResponse({"ResultCode": 1, "ResultDesc": "POST only"}, status=405)
    _authenticate(request, token)
    if _declared_length(request) > services.MAX_BODY:
        reason = f"body over {services.MAX_BODY} bytes"
        return JsonResponse({"ResultCode": 1, "ResultDesc": f"Rejected: {reason}"}, status=400)
    headers = {k: request.headers[k] for k in KEPT_HEADERS if k in request.headers}
    outcome = services.receive(kind, request.body, headers, client_ip(request))
    if outcome.bad_request:
        reply = {"ResultCode": 1, "ResultDesc": f"Rejected: {outcome.error}"}
        return JsonResponse(reply, status=400)
    return JsonResponse(outcome.reply or ACCEPTED)


@public
@csrf_exempt
def c2b_validation(request, token):
    return _handle(request, token, Callback.Kind.VALIDATION)


@public
@csrf_exempt
def c2b_confirmation(request, token):
    return _handle(request, token, Callback.Kind.CONFIRMATION)


@public
@csrf_exempt
def stk_callback(request, token):
    return _handle(request, token, Callback.Kind.STK)


urls = [
    path("payments/c2b/validation/<str:token>/", c2b_validation, name="c2b_validation"),
    path("payments/c2b/confirmation/<str:token>/", c2b_confirmation, name="c2b_confirmation"),
    path("payments/stk/callback/<str:token>/", stk_callback, name="stk_callback"),
]
