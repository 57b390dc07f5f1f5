"""Shared fixtures of the hotspot tests (in alpha): a package, a batch maker, and a
second voucher agent (alpha.agent is the first). Other hotspot test modules add theirs
below; keep additions additive."""

import pytest

from hotspot import vouchers
from hotspot.models import Package
from ispops.staff.models import Role, User
from tests.conftest import PASSWORD


@pytest.fixture
def package(in_alpha):
    return Package.objects.create(
        name="1 hour", price="20.00", validity_minutes=60, download_kbps=2000, upload_kbps=1000
    )


@pytest.fixture
def make_batch(in_alpha, package):
    """make_batch(count=5, **options) -> a batch of `package` made by alpha's owner."""

    def make(count=5, **options):
        options.setdefault("actor", in_alpha.owner)
        return vouchers.generate_batch(options.pop("package", package), count, **options)

    return make


@pytest.fixture
def other_agent(in_alpha):
    return User.objects.create_user(
        "agent2@alpha.test", PASSWORD, role=Role.AGENT, full_name="Second Agent"
    )
