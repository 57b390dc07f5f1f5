"""Secrets at rest: encrypted with the configured key, rotatable, never stored plain."""

import os
import subprocess
import sys

import pytest
from django.db import connection

from ispops.lib import crypto
from tests.conftest import ROOT


@pytest.fixture
def fresh_keys(settings):
    def use(*keys):
        settings.ENCRYPTION_KEYS = list(keys)
        crypto._fernet.cache_clear()

    yield use
    crypto._fernet.cache_clear()


def test_round_trip_and_ciphertext_hides_the_value(fresh_keys):
    fresh_keys(crypto.generate_key())
    token = crypto.encrypt("router-pass-123")
    assert "router-pass-123" not in token
    assert crypto.decrypt(token) == "router-pass-123"
    assert crypto.encrypt("router-pass-123") != token  # random IV each time


def test_rotation_decrypts_old_values_with_the_old_key(fresh_keys):
    old, new = crypto.generate_key(), crypto.generate_key()
    fresh_keys(old)
    token = crypto.encrypt("daraja-secret")
    fresh_keys(new, old)
    assert crypto.decrypt(token) == "daraja-secret"
    fresh_keys(new)
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(token)


def test_bad_key_is_a_configuration_error(fresh_keys):
    from django.core.exceptions import ImproperlyConfigured

    fresh_keys("not-a-key")
    with pytest.raises(ImproperlyConfigured):
        crypto.encrypt("x")


def test_development_key_is_generated_once(fresh_keys, settings, tmp_path):
    settings.ENCRYPTION_KEY_FILE = tmp_path / "encryption.key"
    fresh_keys()
    token = crypto.encrypt("v")
    key = settings.ENCRYPTION_KEY_FILE.read_text()
    crypto._fernet.cache_clear()
    assert crypto.decrypt(token) == "v"
    assert settings.ENCRYPTION_KEY_FILE.read_text() == key
    assert oct(settings.ENCRYPTION_KEY_FILE.stat().st_mode & 0o777) == "0o600"


def test_production_settings_refuse_to_load_without_a_key():
    env = {k: v for k, v in os.environ.items() if k != "ISPOPS_ENCRYPTION_KEY"}
    env.update(ISPOPS_DEBUG="0", SECRET_KEY="x" * 50)
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "ispops.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "ISPOPS_ENCRYPTION_KEY must be set" in result.stderr
    ok = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env={
            **env,
            "DJANGO_SETTINGS_MODULE": "ispops.settings",
            "ISPOPS_ENCRYPTION_KEY": crypto.generate_key(),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr


def test_encrypted_field_stores_ciphertext_in_the_database(db, fresh_keys):
    fresh_keys(crypto.generate_key())
    field = crypto.EncryptedTextField()
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE secret_probe (value text)")
        cursor.execute("INSERT INTO secret_probe VALUES (%s)", [field.get_prep_value("p@ss")])
        cursor.execute("SELECT value FROM secret_probe")
        stored = cursor.fetchone()[0]
    assert stored != "p@ss" and "p@ss" not in stored
    assert field.from_db_value(stored, None, connection) == "p@ss"


def test_mask_shows_no_secret():
    assert crypto.mask("supersecretpassword") == "••••••••rd"
    assert "super" not in crypto.mask("supersecretpassword")
    assert crypto.mask("abc") == "••••••••"
