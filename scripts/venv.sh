#!/usr/bin/env bash
# Create .venv and install the project with its dev tools (pyproject.toml).
set -euo pipefail
PYTHON=${PYTHON:-python3}
if ! command -v "$PYTHON" >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >/dev/null
  else
    echo "venv: python3 (3.11+) is needed: apt-get install python3 python3-venv"; exit 1
  fi
fi
if [ ! -x .venv/bin/python ]; then
  if ! "$PYTHON" -m venv .venv 2>/dev/null; then
    rm -rf .venv
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "venv: installing python3-venv"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
      "$PYTHON" -m venv .venv
    else
      echo "venv: '$PYTHON -m venv' failed: apt-get install python3-venv"; exit 1
    fi
  fi
fi
echo "venv: installing packages (pyproject.toml)"
# Quiet, but keep real errors; the local mirror's "Location ... is ignored" notes are noise.
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip setuptools wheel 2>&1 | grep -v "is ignored" || true
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[dev]" 2>&1 | grep -v "is ignored" || true
.venv/bin/python -c "import django, django_tenants, celery, playwright, pytest_django" \
  || { echo "venv: package installation failed (see above)"; exit 1; }
touch .venv/.installed
