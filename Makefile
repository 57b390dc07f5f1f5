# ispops: `make run` serves the demo ISP, `make test` runs every test (README).
# Both work from a fresh clone: they create .venv, install packages, and make sure
# PostgreSQL and Redis answer (installing and starting them on Debian when root).

SHELL := /bin/bash
PY := .venv/bin/python
PORT ?= 8000
export DATABASE_URL ?= postgres://ispops:ispops@127.0.0.1:5432/ispops
export REDIS_URL ?= redis://127.0.0.1:6379/0

.PHONY: run test lint fmt check migrate seed services bench clean screenshots

.venv/.installed: pyproject.toml
	@scripts/venv.sh

services: .venv/.installed
	@scripts/services.sh postgres redis libs

migrate: services
	@$(PY) manage.py migrate_schemas --executor=standard -v 0
	@$(PY) manage.py ensure_platform

# The demo routers are emulators on 127.0.0.1 (settings.ROUTER_ALLOW_LOCAL).
seed: migrate
	@ISPOPS_ROUTER_ALLOW_LOCAL=$${ISPOPS_ROUTER_ALLOW_LOCAL:-1} $(PY) manage.py seed_demo

run: seed
	@PORT=$(PORT) scripts/run.sh

lint: .venv/.installed
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

fmt: .venv/.installed
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .

check: services
	$(PY) manage.py makemigrations --check --dry-run

test: .venv/.installed
	@scripts/services.sh postgres redis libs chromium
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	$(PY) manage.py makemigrations --check --dry-run -v 1
	.venv/bin/pytest $(PYTEST_ARGS)

# Every staff page at 1366 and 360 px into var/screenshots/ (for review, not committed):
# serves the seeded demo itself. SCREENSHOTS_ARGS="--only /subscribers/ --widths 360".
screenshots: seed
	@scripts/services.sh chromium
	@ISPOPS_ROUTER_ALLOW_LOCAL=$${ISPOPS_ROUTER_ALLOW_LOCAL:-1} $(PY) -m scripts.screenshots $(SCREENSHOTS_ARGS)

bench: seed
	$(PY) -m bench

clean:
	rm -rf .venv var .pytest_cache .ruff_cache
