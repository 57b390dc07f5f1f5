"""Job log, retry, drift page and test connection, as staff use them."""

from network import services
from network.models import DriftItem, RouterJob
from subscribers import services as subscribers
from subscribers.models import Plan


def _account(router, username="pagey", status="installing"):
    plan = Plan.objects.create(name="Page 10M", price=2000, download_kbps=10_000, upload_kbps=5_000)
    customer = subscribers.create_customer(actor="t", name="Page Person", phone="0712999888")
    return subscribers.create_service_account(
        actor="t",
        customer=customer,
        plan=plan,
        username=username,
        password="pw",
        router=router,
        status=status,
    )


def test_job_log_shows_failures_and_retry_requeues(alpha, router, emulator):
    account = _account(router)
    subscribers.activate(account, actor="t")
    emulator.go_down()
    services.run_jobs(router.pk)
    client = alpha.client(alpha.support)
    page = client.get(f"/routers/{router.pk}/jobs/").content.decode()
    assert "Waiting to retry" in page and "cannot be reached" in page
    job = RouterJob.objects.get(service_account=account)
    response = client.post(f"/router-jobs/{job.pk}/retry/")
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.state == "pending"
    emulator.come_up()
    assert services.run_jobs(router.pk) == "1 done, 0 refused"
    account_page = client.get(f"/accounts/{account.pk}/").content.decode()
    assert "Provision (create or update) on core-test" in account_page
    assert client.get(f"/accounts/{account.pk}/router-jobs/").status_code == 200


def test_technicians_cannot_see_job_logs_or_drift(alpha, router):
    client = alpha.client(alpha.technician)
    assert client.get(f"/routers/{router.pk}/jobs/").status_code == 403
    assert client.get(f"/routers/{router.pk}/drift/").status_code == 403


def test_drift_page_shows_the_money_at_stake(alpha, router, emulator, plan=None):
    _account(router, username="paid", status="active")
    emulator.add_row("/ppp/secret", name="free1", password="x")
    client = alpha.client(alpha.owner)
    assert client.post(f"/routers/{router.pk}/drift/check/").status_code == 302
    page = client.get(f"/routers/{router.pk}/drift/").content.decode()
    assert "free1" in page and "paid" in page
    assert "KES 2,000.00" in page  # the missing paid account's monthly value
    assert DriftItem.objects.filter(router=router).count() == 2
    # support may see jobs but not drift (it shows money)
    assert alpha.client(alpha.support).get(f"/routers/{router.pk}/drift/").status_code == 403


def test_test_connection_shows_identity_or_the_reason(alpha, router, emulator):
    client = alpha.client(alpha.admin)
    ok = client.post(f"/routers/{router.pk}/test/").content.decode()
    assert "Connected" in ok and "RouterOS" in ok
    emulator.go_down()
    bad = client.post(f"/routers/{router.pk}/test/").content.decode()
    assert "cannot be reached" in bad
