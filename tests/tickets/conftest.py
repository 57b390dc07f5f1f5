"""Fixtures for the tickets tests: customers in alpha and a way to open tickets."""

import io
import itertools

import pytest
from PIL import Image

from subscribers import services as subscribers
from subscribers.models import Plan
from tickets import services

_counter = itertools.count(1)


@pytest.fixture
def plan(in_alpha):
    return Plan.objects.create(
        name="Tickets 10M", price="2500.00", download_kbps=10_000, upload_kbps=5_000
    )


@pytest.fixture
def make_customer(in_alpha, plan):
    """make_customer(name=..., site=..., account_site=...) -> an active customer with one
    service account (served from `account_site` if given)."""

    def make(name="Wanjiru Kamau", status="active", account_site=None, email="", **fields):
        n = next(_counter)
        customer = subscribers.create_customer(
            actor="test", name=name, phone=f"0733{n:06d}", email=email, **fields
        )
        subscribers.create_service_account(
            actor="test",
            customer=customer,
            plan=plan,
            username=f"tk{n}",
            password="pw",
            status=status,
            site=account_site,
        )
        customer.refresh_from_db()
        return customer

    return make


@pytest.fixture
def make_ticket(in_alpha, make_customer):
    def make(customer=None, **fields):
        fields.setdefault("subject", "No internet since morning")
        fields.setdefault("tell_customer", False)
        return services.open_ticket(
            customer=customer or make_customer(), actor=fields.pop("actor", "test"), **fields
        )

    return make


def png_bytes(size=(4, 4)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path
