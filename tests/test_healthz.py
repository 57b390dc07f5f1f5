"""GET /healthz: db, redis and worker status on any host."""

import shutil
import subprocess
import time

import pytest
import redis

from tests.conftest import free_port


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
    server = shutil.which("redis-server")
    assert server, "redis-server is installed by scripts/services.sh"
    port = free_port()
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"
        probe = redis.Redis(port=port, socket_connect_timeout=0.2)
        for _ in range(50):
            try:
                probe.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.1)
        assert _health(client)["redis"] == "ok"
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    report = _health(client)
    assert report["redis"] == "down"
    assert report["workers"] == "down"
    assert report["status"] == "degraded"
