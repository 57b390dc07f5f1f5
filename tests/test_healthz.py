"""GET /healthz: db, redis and worker status on any host."""

import pytest

from tests.conftest import free_port, start_redis_server, stop_process


def _health(client, host="localhost"):
    response = client.get("/healthz", HTTP_HOST=host)
    assert response.status_code == 200
    return response.json()


@pytest.mark.worker
def test_healthz_all_up_with_a_worker(client, tenants, db, celery_worker_process):
    report = _health(client)
    assert report["db"] == report["redis"] == report["workers"] == "ok"
    assert report["status"] == "ok"


@pytest.mark.parametrize("host", ["localhost", "alpha.localhost", "unknown-isp.localhost"])
def test_healthz_answers_on_any_host(client, tenants, db, host):
    assert _health(client, host)["db"] == "ok"


def test_healthz_reports_a_stopped_redis_as_down(client, tenants, db, settings):
    port = free_port()
    proc = start_redis_server(port)
    try:
        settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"
        assert _health(client)["redis"] == "ok"
    finally:
        stop_process(proc)

    report = _health(client)
    assert report["redis"] == "down"
    assert report["workers"] == "down"
    assert report["status"] == "degraded"
