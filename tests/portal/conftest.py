"""Fixtures for the portal tests: customers with phones, in alpha, and helpers that sign
in the way a subscriber does (the code is read from the message log)."""

import itertools
import re

import pytest
from django_tenants.utils import tenant_context

from ispops.messaging.models import Message
from subscribers import services
from subscribers.models import Plan

_counter = itertools.count(1)


@pytest.fixture
def plan(in_alpha):
    return Plan.objects.create(
        name="Home 10M", price="2500.00", download_kbps=10_000, upload_kbps=5_000
    )


@pytest.fixture
def make_customer(in_alpha, plan):
    """make_customer(phone=..., name=...) -> a customer with one active service."""

    def make(phone, name="Wanjiru Kamau", status="active", **fields):
        n = next(_counter)
        customer = services.create_customer(actor="test", name=name, phone=phone, **fields)
        services.create_service_account(
            actor="test",
            customer=customer,
            plan=plan,
            username=f"portal{n}",
            password="pw",
            status=status,
        )
        customer.refresh_from_db()
        return customer

    return make


def last_code(isp, phone: str) -> str | None:
    """The code in the newest portal_code SMS to `phone` (2547... form), from the log."""
    with tenant_context(isp):
        message = (
            Message.objects.filter(template_key="portal_code", to=phone).order_by("-id").first()
        )
    if message is None:
        return None
    return code_in(message.body)


def code_in(body: str) -> str | None:
    """The code in a portal_code SMS: the number after "code is" (a customer's name may
    hold digits too), else the last 4-8 digit number in the text."""
    found = re.search(r"code is (\d{4,8})\b", body) or re.search(r".*\b(\d{4,8})\b", body)
    return found.group(1) if found else None


def sign_in(tenant, client, phone: str, typed: str | None = None):
    """Ask for a code for `typed` (default the phone) and enter it; the last response."""
    client.post("/my/", {"phone": typed or phone})
    return client.post("/my/code/", {"code": last_code(tenant.isp, phone)})
