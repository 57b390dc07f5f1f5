"""`/d/<signed>/`: one invoice, receipt or statement PDF by a signed, expiring link
(billing.links), on the ISP's host, for anyone holding the link: no login, no listing,
and no other document reachable from it."""

from django.db import connection
from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_safe

from billing import links
from ispops.staff.access import public


@public
@require_safe
def document_link(request, signed):
    now = timezone.now()
    try:
        ref = links.check_token(signed, at=now)
        document = links.render_document(ref, at=now)
    except links.LinkExpired:
        return _refused(request, expired=True, status=410)
    except links.LinkError:
        return _refused(request, expired=False, status=404)
    response = HttpResponse(document.content, content_type="application/pdf")
    response["Content-Disposition"] = f'inline; filename="{document.filename}.pdf"'
    return _private(response)


def _refused(request, *, expired: bool, status: int):
    context = {"expired": expired, "isp_name": getattr(connection.tenant, "name", "")}
    response = render(request, "billing/link_refused.html", context, status=status)
    return _private(response)


def _private(response):
    # The link is the key: keep the document out of shared caches and search engines,
    # and the token out of the Referer of anything the viewer opens next.
    response["Cache-Control"] = "private, no-store"
    response["X-Robots-Tag"] = "noindex, nofollow"
    response["Referrer-Policy"] = "no-referrer"
    return response
