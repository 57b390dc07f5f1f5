"""The one settings module. Every knob comes from the environment (README lists them).

Development needs no environment at all: defaults point at PostgreSQL and Redis on
localhost and a local encryption key is generated on first run. Production sets
ISPOPS_DEBUG=0, which makes SECRET_KEY and ISPOPS_ENCRYPTION_KEY mandatory.
"""

import os
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

from ispops.lib.env import env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("ISPOPS_VAR_DIR", str(BASE_DIR / "var")))

# pytest sets PYTEST_VERSION before anything is imported; tests then use their own
# Redis database so a developer's running worker never eats a test's tasks.
TESTING = "PYTEST_VERSION" in os.environ

DEBUG = env_bool("ISPOPS_DEBUG", True)

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when ISPOPS_DEBUG=0")
    SECRET_KEY = "insecure-development-key-do-not-use-in-production"

# Hosts: the platform lives on PLATFORM_DOMAIN, each ISP on <subdomain>.PLATFORM_DOMAIN.
PLATFORM_DOMAIN = env_str("ISPOPS_PLATFORM_DOMAIN", "localhost")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", [PLATFORM_DOMAIN, f".{PLATFORM_DOMAIN}", "127.0.0.1"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
# Port used in links sent by email/SMS from background jobs (no request to copy it from).
PUBLIC_PORT = env_str("ISPOPS_PUBLIC_PORT", "8000" if DEBUG else "")
PUBLIC_SCHEME = env_str("ISPOPS_PUBLIC_SCHEME", "http" if DEBUG else "https")

SHARED_APPS = [
    "django_tenants",
    "ispops.tenancy",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django.contrib.postgres",
    "django_htmx",
    "template_partials",
    "django_celery_beat",
    "ispops.staff",
    "ispops.audit",
]
TENANT_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "ispops.staff",
    "ispops.audit",
    "subscribers",
    "billing",
    "payments",
    "network",
    "tickets",
    "inventory",
    "ispops.messaging",
    "portal",
    "hotspot",
    "reports",
]
INSTALLED_APPS = SHARED_APPS + [app for app in TENANT_APPS if app not in SHARED_APPS]

TENANT_MODEL = "tenancy.Isp"
TENANT_DOMAIN_MODEL = "tenancy.Domain"
PUBLIC_SCHEMA_URLCONF = "ispops.urls_public"
ROOT_URLCONF = "ispops.urls"
DATABASE_ROUTERS = ("django_tenants.routers.TenantSyncRouter",)
# Send "SET search_path" only when the schema changes, not before every query.
TENANT_LIMIT_SET_CALLS = True

# The largest request body: above the largest upload a form accepts (subscriber CSVs
# 20 MB, ticket photos 8 MB, statements 5 MB), so those forms say what is wrong.
MAX_REQUEST_BYTES = env_int("ISPOPS_MAX_REQUEST_MB", 25) * 1024 * 1024

MIDDLEWARE = [
    # Health answers before tenant routing so it works on any host, known or not.
    "ispops.healthz.HealthzMiddleware",
    # Static files likewise need no tenant, session or role.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Before anything reads the body (an upload is spooled to disk on first access).
    "ispops.lib.limits.RequestSizeLimitMiddleware",
    "ispops.tenancy.middleware.IspRoutingMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "ispops.staff.middleware.SlidingSessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "ispops.audit.middleware.AuditActorMiddleware",
    "ispops.staff.middleware.RoleRequiredMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "ispops.staff.context_processors.shell",
            ],
        },
    },
]

WSGI_APPLICATION = "ispops.wsgi.application"
# The error page (DEBUG on) and error e-mails hide DATABASE_URL and every other
# connection string, not only settings named like a key or password.
DEFAULT_EXCEPTION_REPORTER_FILTER = "ispops.lib.errorreports.HideConnectionStrings"

DATABASE_URL = env_str("DATABASE_URL", "postgres://ispops:ispops@127.0.0.1:5432/ispops")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
DATABASES["default"]["ENGINE"] = "django_tenants.postgresql_backend"
# Two test runs at once (say, two checkouts) each need their own test database.
if os.environ.get("ISPOPS_TEST_DB"):
    DATABASES["default"]["TEST"] = {"NAME": os.environ["ISPOPS_TEST_DB"]}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


def _redis_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{db}"))


REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
if TESTING:
    REDIS_URL = _redis_db(REDIS_URL, env_int("ISPOPS_TEST_REDIS_DB", 15))

AUTH_USER_MODEL = "staff.User"
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
if TESTING:
    # Hashing is the slowest thing in a test run; strength is tested nowhere.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # An ISP's schema is copied from one made by the migrations at the start of the run
    # (tests/conftest.py) instead of migrated again: 2 s instead of 11 s per ISP, and a
    # run makes more than a dozen. The copy is the same schema (tables, indexes, partial
    # unique indexes, seeded rows); only unique constraints get PostgreSQL's default
    # names, and no code looks a constraint up by name (ON CONFLICT names columns).
    TENANT_CREATION_FAKES_MIGRATIONS = True
    TENANT_BASE_SCHEMA = "tenant_base"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# Login throttling: this many failures for one login (or 4x for one address) within
# the window locks further attempts until the window has passed since the last one.
LOGIN_FAILURE_LIMIT = env_int("ISPOPS_LOGIN_FAILURE_LIMIT", 5)
LOGIN_FAILURE_WINDOW_SECONDS = env_int("ISPOPS_LOGIN_FAILURE_WINDOW", 15 * 60)
# Behind a proxy REMOTE_ADDR is the proxy; name the META key the proxy sets to the
# client's address (e.g. HTTP_X_REAL_IP). Empty: trust no header, it could be forged.
CLIENT_IP_HEADER = env_str("ISPOPS_CLIENT_IP_HEADER", "")

# Sessions expire after this much idle time. ispops.staff.middleware.SlidingSessionMiddleware
# renews a session at most every SESSION_RENEW_SECONDS, not on every request (a write).
SESSION_COOKIE_AGE = env_int("ISPOPS_SESSION_SECONDS", 8 * 3600)
SESSION_RENEW_SECONDS = 300
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = env_bool("ISPOPS_SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if not DEBUG else None
X_FRAME_OPTIONS = "DENY"
# Production is HTTPS only (README, "In front of the stack"): plain HTTP is redirected
# (/healthz answers before this, for the container's own check), and browsers are told
# to use HTTPS for the platform and every ISP host under it.
SECURE_SSL_REDIRECT = env_bool("ISPOPS_SSL_REDIRECT", not DEBUG)
SECURE_HSTS_SECONDS = env_int("ISPOPS_HSTS_SECONDS", 0 if DEBUG else 365 * 24 * 3600)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = env_bool("ISPOPS_HSTS_PRELOAD", not DEBUG)

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "Africa/Nairobi"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("ISPOPS_STATIC_ROOT", str(VAR_DIR / "static")))
MEDIA_ROOT = Path(env_str("ISPOPS_MEDIA_ROOT", str(VAR_DIR / "media")))
MEDIA_URL = "/media/"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Development serves straight from static/ without collectstatic (WhiteNoise still
# wants STATIC_ROOT to exist, so it is made here).
WHITENOISE_USE_FINDERS = DEBUG
if DEBUG:
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)

EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", f"ispops <noreply@{PLATFORM_DOMAIN}>")
# SMS when an ISP has not chosen a gateway: "console" (logged only) or "africastalking".
SMS_BACKEND = env_str("ISPOPS_SMS_BACKEND", "console")

# Secrets at rest (router passwords, Daraja keys): comma-separated Fernet keys, the
# first encrypts, all decrypt (so keys can be rotated). ispops.lib.crypto reads it.
ENCRYPTION_KEYS = env_list("ISPOPS_ENCRYPTION_KEY", [])
if not ENCRYPTION_KEYS and not DEBUG:
    raise ImproperlyConfigured("ISPOPS_ENCRYPTION_KEY must be set when ISPOPS_DEBUG=0")
ENCRYPTION_KEY_FILE = VAR_DIR / "encryption.key"

# Celery: Redis is broker and result store; tasks run in their ISP's schema.
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
# Our tasks are fire-and-forget (their effects are in the database). Storing no result
# also keeps a web request from waiting ~20 s on the result store when Redis is down.
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_EXPIRES = 24 * 3600
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A worker keeps its database connection between tasks, as a web process does between
# requests (ispops.celery drops one that is broken or older than CONN_MAX_AGE before each
# task): opening one costs more than a restoration's whole router job. Celery's default
# closes it after every task. The tenant of a task's schema is looked up once a minute.
CELERY_DB_REUSE_MAX = 1_000_000
CELERY_TASK_TENANT_CACHE_SECONDS = 60
# Two queues, which every worker consumes: "urgent" (crediting a payment, applying router
# jobs: a subscriber waits to get back online) is always taken before "celery" (SMS,
# billing runs, polls), so a restoration never queues behind a bulk send.
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_QUEUES = [Queue("urgent"), Queue("celery")]
CELERY_TASK_ROUTES = {
    "payments.tasks.credit_payment_task": {"queue": "urgent"},
    "network.tasks.run_router_jobs": {"queue": "urgent"},
    # A hotspot buyer waits on the captive page for these (push the login, log in).
    "hotspot.tasks.push_router": {"queue": "urgent"},
    "hotspot.tasks_captive.login_device_task": {"queue": "urgent"},
}
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": 3600,
    "socket_connect_timeout": 3,
    "queue_order_strategy": "priority",  # poll "urgent" first, not round robin
}
# When Redis is down, sending a task gives up within a second: the work is already in the
# database (payments, router jobs, messages) and the sweeps send it once Redis is back,
# so a web request (an M-Pesa callback) must not hang waiting for the broker.
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Each entry runs the named task once in every active ISP's schema (ispops.tasks.fan_out).
CELERY_BEAT_SCHEDULE = {
    "purge-old-login-failures": {
        "task": "ispops.tasks.fan_out",
        "schedule": crontab(minute=17),
        "args": ["ispops.staff.tasks.purge_login_failures"],
    },
    "forget-phone-codes": {
        "task": "ispops.tasks.fan_out",
        "schedule": crontab(minute=41),
        "args": ["ispops.messaging.tasks.forget_phone_codes"],
    },
    "sweep-router-jobs": {
        "task": "ispops.tasks.fan_out",
        "schedule": 60.0,
        "args": ["network.tasks.sweep_router_jobs"],
    },
    "poll-routers": {
        "task": "ispops.tasks.fan_out",
        "schedule": float(env_int("ISPOPS_POLL_SECONDS", 60)),
        "args": ["network.tasks.poll_routers"],
    },
    "downsample-monitoring": {
        "task": "ispops.tasks.fan_out",
        "schedule": crontab(minute=7),
        "args": ["network.tasks.downsample_samples"],
    },
    # Billing early in the morning, dunning after it (Africa/Nairobi).
    "daily-billing": {
        "task": "ispops.tasks.fan_out",
        "schedule": crontab(hour=1, minute=5),
        "args": ["billing.tasks.daily_billing"],
    },
    # The daily subscription snapshot of yesterday (reports.snapshots), before billing.
    "nightly-snapshot": {
        "task": "ispops.tasks.fan_out",
        "schedule": crontab(hour=0, minute=20),
        "args": ["reports.tasks.nightly_snapshot"],
    },
    # Last month's summary PDF to each owner (reports.tasks_summary), once a month.
    "monthly-summary": {
        "task": "ispops.tasks.fan_out",
        "schedule": crontab(day_of_month=1, hour=7, minute=0),
        "args": ["reports.tasks_summary.send_monthly_summary"],
    },
    "daily-dunning": {
        "task": "ispops.tasks.fan_out",
        "schedule": crontab(hour=8, minute=0),
        "args": ["billing.tasks.daily_dunning"],
    },
    # Prepaid expiry within minutes of the moment, not at the next daily run.
    "enforce-prepaid-expiry": {
        "task": "ispops.tasks.fan_out",
        "schedule": 60.0,
        "args": ["billing.tasks.enforce_expiry"],
    },
    # PPPoE usage and fair use (network.pppoe_usage, network.fup): a poll a minute, so
    # a threshold acts within one poll and a top-up or a new period within 60 s.
    "poll-pppoe-usage": {
        "task": "ispops.tasks.fan_out",
        "schedule": 60.0,
        "args": ["network.tasks.poll_pppoe_usage"],
    },
    "check-drift": {
        "task": "ispops.tasks.fan_out",
        "schedule": crontab(minute=23, hour="*/6"),
        "args": ["network.tasks.check_drift_all"],
    },
    # Plan changes scheduled for the end of a paid period (subscribers.plan_changes);
    # every minute, or a payment just after the moment buys a term on the old plan.
    "apply-plan-changes": {
        "task": "ispops.tasks.fan_out",
        "schedule": 60.0,
        "args": ["billing.tasks.apply_plan_changes"],
    },
    # New invoices of a billing run, told to their customers (billing.announce).
    "announce-invoices": {
        "task": "ispops.tasks.fan_out",
        "schedule": 60.0,
        "args": ["billing.tasks.announce_invoices"],
    },
    "sweep-messages": {
        "task": "ispops.tasks.fan_out",
        "schedule": 60.0,
        "args": ["ispops.messaging.tasks.sweep_messages"],
    },
    # Payments a lost task left uncredited, and STK pushes whose callback never came.
    "sweep-payments": {
        "task": "ispops.tasks.fan_out",
        "schedule": 30.0,
        "args": ["payments.tasks.sweep_payments"],
    },
    # Voucher cards never sold past their batch's expiry (hotspot.vouchers); the captive
    # page refuses them from the moment itself, so this only tidies states and ledgers.
    "expire-unsold-vouchers": {
        "task": "ispops.tasks.fan_out",
        "schedule": crontab(minute="*/15"),
        "args": ["hotspot.tasks.expire_unsold_vouchers"],
    },
    # SLA warnings and escalations (each happens once per ticket).
    "check-ticket-slas": {
        "task": "ispops.tasks.fan_out",
        "schedule": crontab(minute="*/5"),
        "args": ["tickets.tasks.check_ticket_slas"],
    },
    # Hotspot (hotspot.tasks): entitlements end within 60 s of their end or data
    # limit; usage is counted from the routers' counters every minute; each hotspot
    # router is compared with ispops (profiles, walled garden, users) every 15 minutes.
    "hotspot-enforce": {
        "task": "ispops.tasks.fan_out",
        "schedule": 30.0,
        "args": ["hotspot.tasks.enforce_entitlements"],
    },
    "hotspot-usage": {
        "task": "ispops.tasks.fan_out",
        "schedule": 60.0,
        "args": ["hotspot.tasks.poll_hotspot_usage"],
    },
    "hotspot-sync": {
        "task": "ispops.tasks.fan_out",
        "schedule": crontab(minute="*/15"),
        "args": ["hotspot.tasks.sync_hotspot_routers"],
    },
    # Low stock is checked after every movement; this catches alerts whose email was
    # not queued (broker down) and thresholds no movement has touched.
    "check-low-stock": {
        "task": "ispops.tasks.fan_out",
        "schedule": crontab(minute="*/30"),
        "args": ["inventory.tasks.check_low_stock"],
    },
}

# MikroTik API: seconds to wait for a router before calling it unreachable.
ROUTER_API_TIMEOUT = env_int("ISPOPS_ROUTER_TIMEOUT", 10)
# Whether a router may be at a loopback, link-local, multicast or this installation's own
# address (its database, Redis, this machine). Off in production: an ISP admin's router
# form must not reach the services behind ispops. The demo (`make run`) and the tests run
# RouterOS emulators on 127.0.0.1 and turn it on.
ROUTER_ALLOW_LOCAL = env_bool("ISPOPS_ROUTER_ALLOW_LOCAL", TESTING)
# The address list a suspended subscriber's address goes into (walled garden).
SUSPENDED_ADDRESS_LIST = env_str("ISPOPS_SUSPENDED_LIST", "ispops-suspended")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "filters": {"redact_tokens": {"()": "ispops.lib.logfilters.RedactCallbackTokens"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["redact_tokens"],
        }
    },
    "root": {"handlers": ["console"], "level": env_str("ISPOPS_LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # Redacted on the logger, not only on our handler: Django's own "django"
        # logger keeps the console handler of its default config, which would print
        # the "Not Found: /payments/.../<token>/" line again, token and all.
        "django.request": {"filters": ["redact_tokens"]},
        # The development server's request lines, through the filtered handler.
        "django.server": {
            "handlers": ["console"],
            "level": "INFO",
            "propagate": False,
            "filters": ["redact_tokens"],
        },
    },
}
