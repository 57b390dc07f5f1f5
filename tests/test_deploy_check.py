"""Production settings pass Django's deployment checklist: `manage.py check --deploy`
with ISPOPS_DEBUG=0 and the variables README documents (issue 12)."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent


def production_env() -> dict:
    # Not the test run's own: its ISPOPS_ settings, pytest's markers, and the async
    # escape hatch the browser tests set (a deployment must not).
    drop = ("ISPOPS_", "PYTEST", "DJANGO_ALLOW_ASYNC_UNSAFE")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(
        ISPOPS_DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(50),
        ISPOPS_ENCRYPTION_KEY=Fernet.generate_key().decode(),
        ISPOPS_PLATFORM_DOMAIN="isp.example.com",
        DATABASE_URL=os.environ.get(
            "DATABASE_URL", "postgres://ispops:ispops@127.0.0.1:5432/ispops"
        ),
    )
    return env


def test_production_settings_pass_the_deployment_checklist():
    run = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=production_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "no issues" in run.stdout


def test_production_settings_refuse_to_start_without_a_secret_key():
    env = production_env()
    del env["SECRET_KEY"]
    run = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode != 0
    assert "SECRET_KEY must be set" in run.stderr
