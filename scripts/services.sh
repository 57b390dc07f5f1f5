#!/usr/bin/env bash
# Make sure PostgreSQL and Redis answer at DATABASE_URL / REDIS_URL.
# On a Debian/Ubuntu machine where we are root and they are missing, install and start
# them; otherwise say exactly what to run. Used by `make run` and `make test`.
set -euo pipefail

DATABASE_URL=${DATABASE_URL:-postgres://ispops:ispops@127.0.0.1:5432/ispops}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0}
PY=${PY:-.venv/bin/python}

say() { printf 'services: %s\n' "$*"; }
can_install() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; }
apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# Parse the URLs with Python (always present) rather than sed.
read -r DB_USER DB_PASS DB_HOST DB_PORT DB_NAME < <($PY - "$DATABASE_URL" <<'PY'
import sys
from urllib.parse import urlsplit
u = urlsplit(sys.argv[1])
print(u.username or "postgres", u.password or "-", u.hostname or "127.0.0.1", u.port or 5432, u.path.lstrip("/") or "ispops")
PY
)
read -r REDIS_HOST REDIS_PORT < <($PY - "$REDIS_URL" <<'PY'
import sys
from urllib.parse import urlsplit
u = urlsplit(sys.argv[1])
print(u.hostname or "127.0.0.1", u.port or 6379)
PY
)
is_local() { case "$1" in 127.*|localhost|::1) return 0;; *) return 1;; esac; }

db_answers() {
  $PY - "$DATABASE_URL" <<'PY' >/dev/null 2>&1
import sys, psycopg
psycopg.connect(sys.argv[1].rsplit("/", 1)[0] + "/postgres", connect_timeout=3).close()
PY
}
server_answers() { # any PostgreSQL listening, whatever the role
  $PY - "$DB_HOST" "$DB_PORT" <<'PY' >/dev/null 2>&1
import socket, sys
socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2).close()
PY
}
as_postgres() { if command -v runuser >/dev/null; then runuser -u postgres -- "$@"; else su postgres -c "$*"; fi; }

ensure_postgres() {
  if db_answers; then return 0; fi
  if ! is_local "$DB_HOST"; then
    say "cannot reach PostgreSQL at $DB_HOST:$DB_PORT as $DB_USER; check DATABASE_URL"; exit 1
  fi
  if ! server_answers; then
    if ! command -v pg_ctlcluster >/dev/null; then
      if can_install; then say "installing PostgreSQL"; apt_install postgresql postgresql-contrib
      else say "PostgreSQL is not running. Install it (apt-get install postgresql) or set DATABASE_URL."; exit 1; fi
    fi
    ver=$(ls /etc/postgresql | sort -n | tail -1)
    if [ -z "$ver" ]; then
      if [ "$(id -u)" = 0 ]; then ver=$(ls /usr/lib/postgresql | sort -n | tail -1); pg_createcluster "$ver" main >/dev/null
      else say "no PostgreSQL cluster: run 'sudo pg_createcluster <version> main --start'"; exit 1; fi
    fi
    say "starting PostgreSQL $ver"
    if [ "$(id -u)" = 0 ]; then pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
    else say "run: sudo pg_ctlcluster $ver main start"; exit 1; fi
    for _ in $(seq 1 30); do server_answers && break; sleep 0.5; done
  fi
  if db_answers; then return 0; fi
  # The server runs but our role cannot log in: create it (needs the local superuser).
  if [ "$(id -u)" = 0 ] && id postgres >/dev/null 2>&1; then
    say "creating PostgreSQL role $DB_USER"
    as_postgres psql -q -v ON_ERROR_STOP=1 -d postgres -c \
      "DO \$\$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname='$DB_USER') THEN CREATE ROLE \"$DB_USER\" LOGIN CREATEDB PASSWORD '$DB_PASS'; ELSE ALTER ROLE \"$DB_USER\" LOGIN CREATEDB PASSWORD '$DB_PASS'; END IF; END\$\$;" >/dev/null
  fi
  if ! db_answers; then
    say "PostgreSQL runs but refuses $DB_USER. As its superuser run:"
    say "  CREATE ROLE $DB_USER LOGIN CREATEDB PASSWORD '$DB_PASS';"
    exit 1
  fi
}

ensure_database() {
  $PY - "$DATABASE_URL" "$DB_NAME" <<'PY'
import sys, psycopg
url, name = sys.argv[1], sys.argv[2]
with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True, connect_timeout=3) as conn:
    if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
        conn.execute(f'CREATE DATABASE "{name}"')
        print(f"services: created database {name}")
PY
}

redis_answers() {
  $PY - "$REDIS_URL" <<'PY' >/dev/null 2>&1
import sys, redis
redis.Redis.from_url(sys.argv[1], socket_connect_timeout=2).ping()
PY
}

ensure_redis() {
  if redis_answers; then return 0; fi
  if ! is_local "$REDIS_HOST"; then say "cannot reach Redis at $REDIS_URL"; exit 1; fi
  if ! command -v redis-server >/dev/null; then
    if can_install; then say "installing Redis"; apt_install redis-server
    else say "Redis is not running. Install it (apt-get install redis-server) or set REDIS_URL."; exit 1; fi
  fi
  say "starting Redis on port $REDIS_PORT"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
    --dir /tmp --logfile "/tmp/ispops-redis-$REDIS_PORT.log"
  for _ in $(seq 1 20); do redis_answers && return 0; sleep 0.25; done
  say "Redis did not start; see /tmp/ispops-redis-$REDIS_PORT.log"; exit 1
}

ensure_system_libs() { # WeasyPrint's Pango/HarfBuzz and a font
  if ldconfig -p 2>/dev/null | grep -q 'libpango-1.0.so' \
     && ldconfig -p 2>/dev/null | grep -q 'libharfbuzz-subset.so' \
     && [ -n "$(fc-list 2>/dev/null | head -1)" ]; then return 0; fi
  if can_install; then
    say "installing Pango, HarfBuzz and fonts for PDF rendering"
    apt_install libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core fontconfig
  else
    say "PDFs need: apt-get install libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core"
  fi
}

ensure_chromium() {
  if [ -x /usr/bin/chromium ]; then return 0; fi
  if can_install; then say "installing Debian's chromium for the browser tests"; apt_install chromium
  else say "browser tests need /usr/bin/chromium: apt-get install chromium"; exit 1; fi
}

for what in "$@"; do
  case "$what" in
    postgres) ensure_postgres; ensure_database ;;
    redis) ensure_redis ;;
    libs) ensure_system_libs ;;
    chromium) ensure_chromium ;;
    *) say "unknown: $what"; exit 2 ;;
  esac
done
