"""GET /healthz on any host: is the database, Redis and at least one worker up?

Answered by a middleware ahead of tenant routing, so it works on the platform host,
every ISP host and an unknown one alike, and costs no session or user lookup. Always
HTTP 200 (CONTRACT.md); "status" is "ok" only when all three are up.
"""

import redis
from django.conf import settings
from django.db import connection
from django.http import JsonResponse

UP, DOWN = "ok", "down"


def check_db() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return UP
    except Exception:
        return DOWN


def check_redis(url: str | None = None) -> str:
    try:
        client = redis.Redis.from_url(
            url or settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1
        )
        client.ping()
        client.close()
        return UP
    except redis.RedisError:
        return DOWN


def worker_answers(timeout: float = 1.0) -> bool:
    """True as soon as one worker answers a ping (limit=1: no waiting for the rest)."""
    from ispops.celery import app

    return bool(app.control.ping(timeout=timeout, limit=1))


def health() -> dict:
    db = check_db()
    cache = check_redis()
    # Workers answer pings over Redis: with Redis down they cannot be asked.
    workers = worker_answers() if cache == UP else False
    report = {"db": db, "redis": cache, "workers": UP if workers else DOWN}
    report["status"] = UP if db == cache == report["workers"] == UP else "degraded"
    return report


class HealthzMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path in ("/healthz", "/healthz/") and request.method in ("GET", "HEAD"):
            return JsonResponse(health())
        return self.get_response(request)
