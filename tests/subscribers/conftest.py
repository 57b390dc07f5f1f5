"""Fixtures for the subscribers tests: a plan and a way to make customers, in alpha."""

import itertools

import pytest

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
    """make_customer(name=..., status=...) -> a customer with one service account."""

    def make(name="Wanjiru Kamau", status="active", phone=None, username=None, **fields):
        n = next(_counter)
        customer = services.create_customer(
            actor="test", name=name, phone=phone or f"07{n:08d}", **fields
        )
        services.create_service_account(
            actor="test",
            customer=customer,
            plan=fields.get("plan_obj") or plan,
            username=username if username is not None else f"user{n}",
            password="pw",
            status=status,
        )
        customer.refresh_from_db()
        return customer

    return make
