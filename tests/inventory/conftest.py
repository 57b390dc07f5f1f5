"""Fixtures for the inventory tests: a store, models and items in alpha, and customers
with a service account to install at."""

import itertools

import pytest

from inventory import services
from inventory.models import EquipmentModel, Store
from ispops.staff.models import Branch
from subscribers import services as subscribers
from subscribers.models import Plan

_n = itertools.count(1)


@pytest.fixture
def store(in_alpha):
    return Store.objects.create(name="Main store", branch=Branch.objects.order_by("pk").first())


@pytest.fixture
def ont(in_alpha):
    return EquipmentModel.objects.create(name="Huawei HG8145V5", kind=EquipmentModel.Kind.ONT)


@pytest.fixture
def plan(in_alpha):
    return Plan.objects.create(
        name="Home 10M", price="2500.00", download_kbps=10_000, upload_kbps=5_000
    )


@pytest.fixture
def receive(in_alpha, store, ont):
    """receive("SN1", mac=...) -> an item in stock at the main store."""

    def make(serial=None, **fields):
        fields.setdefault("model", ont)
        fields.setdefault("store", store)
        return services.receive_item(actor="test", serial=serial or f"SN{next(_n):06d}", **fields)

    return make


@pytest.fixture
def make_account(in_alpha, plan):
    """make_account(name) -> a live service account of a new customer."""

    def make(name="Wanjiru Kamau"):
        n = next(_n)
        customer = subscribers.create_customer(actor="test", name=name, phone=f"0733{n:06d}")
        return subscribers.create_service_account(
            actor="test", customer=customer, plan=plan, username=f"inv{n}", status="active"
        )

    return make
