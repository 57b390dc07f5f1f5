"""Safaricom's callbacks. Each request is stored as it came (body, headers, source
address, time) before it is parsed, then turned into a payment or an STK result; the
crediting happens in a worker, so Safaricom gets its answer in milliseconds.

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
from payments.models import Callback, MpesaSettings

security_log = logging.getLogger("ispops.security")

ACCEPTED = {"ResultCode": 0, "ResultDesc": "Accepted"}
KEPT_HEADERS = ("Content-Type", "User-Agent", "X-Forwarded-For", "X-Real-Ip", "Host")


def _authenticate(request, token: str) -> MpesaSettings:
    cfg = MpesaSettings.load()
    ip = client_ip(request)
    if not hmac.compare_digest(token.encode(), cfg.callback_token.encode()):
        security_log.warning("M-Pesa callback with a wrong token from %s", ip)
        raise Http404
    if not services.source_allowed(cfg, ip):
        security_log.warning("M-Pesa callback from %s, not on the allowlist", ip)
        raise Http404
    return cfg


def _bad(reason: str) -> JsonResponse:
    return JsonResponse({"ResultCode": 1, "ResultDesc": f"Rejected: {reason}"}, status=400)


def _receive(request, token: str, kind: str):
    """Authenticate, refuse what cannot be a callback, store the rest raw."""
    if request.method != "POST":
        return None, JsonResponse({"ResultCode": 1, "ResultDesc": "POST only"}, status=405)
    _authenticate(request, token)
    length = int(request.META.get("CONTENT_LENGTH") or 0)
    if length > services.MAX_BODY:
        return None, _bad(f"body over {services.MAX_BODY} bytes")
    body = request.body
    headers = {k: request.headers[k] for k in KEPT_HEADERS if k in request.headers}
    callback = services.store_callback(kind, body, headers, client_ip(request))
    try:
        data = services.parse_json(body)
    except services.BadCallback as exc:
        callback.state, callback.error = Callback.State.FAILED, str(exc)
        callback.save(update_fields=["state", "error"])
        return None, _bad(str(exc))
    return (callback, data), None


@public
@csrf_exempt
def c2b_validation(request, token):
    received, refusal = _receive(request, token, Callback.Kind.VALIDATION)
    if refusal:
        return refusal
    return JsonResponse(services.validate_c2b(*received))


@public
@csrf_exempt
def c2b_confirmation(request, token):
    received, refusal = _receive(request, token, Callback.Kind.CONFIRMATION)
    if refusal:
        return refusal
    try:
        services.take_confirmation(*received)
    except services.BadCallback as exc:
        return _bad(str(exc))
    return JsonResponse(ACCEPTED)


@public
@csrf_exempt
def stk_callback(request, token):
    received, refusal = _receive(request, token, Callback.Kind.STK)
    if refusal:
        return refusal
    try:
        services.take_stk_callback(*received)
    except services.BadCallback as exc:
        return _bad(str(exc))
    return JsonResponse(ACCEPTED)


urls = [
    path("payments/c2b/validation/<str:token>/", c2b_validation, name="c2b_validation"),
    path("payments/c2b/confirmation/<str:token>/", c2b_confirmation, name="c2b_confirmation"),
    path("payments/stk/callback/<str:token>/", stk_callback, name="stk_callback"),
]
