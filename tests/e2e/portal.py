"""Browser helpers for the portal tests: sign in as a subscriber does, with the code
read from the message log, and check a page fits a 360 px phone."""

import re

from django_tenants.utils import tenant_context

from ispops.messaging.models import Message
from tests.portal.conftest import code_in


def newest_code(isp, phone: str, after_id: int = 0) -> str | None:
    """The code in the newest portal_code SMS to `phone` (2547... form) after message
    `after_id`, from the message log."""
    with tenant_context(isp):
        message = (
            Message.objects.filter(template_key="portal_code", to=phone, id__gt=after_id)
            .order_by("-id")
            .first()
        )
    return code_in(message.body) if message else None


def last_message_id(isp) -> int:
    with tenant_context(isp):
        newest = Message.objects.order_by("-id").values_list("id", flat=True).first()
    return newest or 0


def sign_in_by_code(page, base: str, isp, phone: str, typed: str | None = None) -> None:
    """On `page`, sign in to `base`/my/ with the phone (as `typed`, default 07...) and
    the code from the SMS; ends on the portal's home (or account choice)."""
    before = last_message_id(isp)
    page.goto(f"{base}/my/")
    page.fill("form[action='/my/'] input[name=phone]", typed or "0" + phone[3:])
    page.get_by_role("button", name="Send me a code").click()
    page.wait_for_url(re.compile(r"/my/code/"))
    code = newest_code(isp, phone, after_id=before)
    assert code, f"no portal_code SMS to {phone} in the message log"
    page.fill("input[name=code]", code)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url(re.compile(r"/my/(choose/)?$"))


def assert_fits(page, width: int = 360) -> None:
    """Nothing on the page is wider than the phone (measured once a navigation a click
    started has loaded the next page)."""
    page.wait_for_load_state()
    assert page.evaluate("document.documentElement.scrollWidth") <= width
