#!/usr/bin/env bash
# Start web, worker and beat together (and the emulators as their issues add them);
# Ctrl-C stops them all. Called by `make run` after migrate and seed_demo.
set -uo pipefail
# Job control: each process gets its own group, so stop() can end each whole tree.
set -m
PY=.venv/bin/python
PORT=${PORT:-8000}

port_free() { ! $PY -c "import socket,sys; s=socket.socket(); s.settimeout(.3); sys.exit(s.connect_ex(('127.0.0.1', int(sys.argv[1]))) != 0)" "$1"; }
while ! port_free "$PORT"; do PORT=$((PORT + 1)); done
export ISPOPS_PUBLIC_PORT=$PORT
# The demo's routers are RouterOS emulators on 127.0.0.1, an address a real installation
# refuses for routers (settings.ROUTER_ALLOW_LOCAL).
export ISPOPS_ROUTER_ALLOW_LOCAL=${ISPOPS_ROUTER_ALLOW_LOCAL:-1}

pids=()
start() { # name, command...
  local name=$1; shift
  ( "$@" 2>&1 | sed -u "s/^/[$name] /" ) &
  pids+=($!)
}
stop() {
  trap - INT TERM EXIT
  echo; echo "stopping..."
  for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null; done
  for _ in $(seq 1 20); do
    alive=0; for pid in "${pids[@]}"; do kill -0 -- "-$pid" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break; sleep 0.5
  done
  for pid in "${pids[@]}"; do kill -KILL -- "-$pid" 2>/dev/null; done
  exit 0
}
trap stop INT TERM EXIT

port_open() { ! port_free "$1"; }
wait_for_port() { # port, seconds
  for _ in $(seq 1 $(($2 * 5))); do port_open "$1" && return 0; sleep 0.2; done
  return 1
}

# The demo ISP's routers are RouterOS emulators (state kept in var/ between runs).
mkdir -p var
demo_routers=$($PY manage.py demo_routers)
fresh=()
while read -r rport ruser rpass rname; do
  [ -n "$rport" ] || continue
  # An emulator with no saved state starts empty: its first sync fills it.
  [ -s "var/emulator-$rname.json" ] || fresh+=("$rname")
  start "router:$rname" $PY manage.py routeros_emulator --port "$rport" --username "$ruser" \
    --password "$rpass" --identity "$rname" --state "var/emulator-$rname.json" --online 70
done <<< "$demo_routers"

# Safaricom's side of M-Pesa: the demo ISP pays through it (STK pushes from the pay page
# and staff, C2B payments by `curl` to its simulate URL, see the README).
DARAJA_PORT=${DARAJA_PORT:-18080}
start daraja $PY manage.py daraja_simulator --port "$DARAJA_PORT" --stk-also-c2b

start web $PY manage.py runserver "0.0.0.0:$PORT"
start worker .venv/bin/celery -A ispops worker -l info --concurrency 2 -n "worker@%h"
start beat .venv/bin/celery -A ispops beat -l info --schedule var/celerybeat-schedule

# Once the emulators listen, give them the billed state (what a real ISP's routers
# have). An empty emulator is being filled, not drifting: its first sync says so
# instead of reporting every billed account as "missing" and money "at stake".
while read -r rport _ _ name; do
  [ -n "$rport" ] || continue
  if ! wait_for_port "$rport" 30; then echo "[sync] $name: emulator not listening"; continue; fi
  out=$($PY manage.py sync_router --schema demo "$name" 2>&1 | tail -n 1)
  if [[ " ${fresh[*]} " == *" $name "* ]] && [[ $out =~ ([0-9]+)\ account\(s\)\ changed ]]; then
    echo "[sync] $name: emulator filled with the billed state (${BASH_REMATCH[1]} accounts)"
  else
    echo "[sync] $out"
  fi
done <<< "$demo_routers"

# Point the demo ISP at the simulator and this port, and register its C2B URLs there.
wait_for_port "$DARAJA_PORT" 30
$PY manage.py configure_mpesa --schema demo --base-url "http://127.0.0.1:$DARAJA_PORT" \
  --public-url "http://demo.localhost:$PORT" --register-urls 2>&1 | sed -u "s/^/[mpesa] /"

# The banner once the site answers: everything above is ready by then.
for _ in $(seq 1 300); do
  $PY -c "import sys, urllib.request as u; u.urlopen(sys.argv[1], timeout=2)" \
    "http://127.0.0.1:$PORT/healthz" 2>/dev/null && break
  sleep 0.2
done
cat <<MSG

  ispops is running. Ctrl-C stops web, worker, beat, the router emulators and the Daraja simulator.

  Demo ISP       http://demo.localhost:$PORT/
  Platform       http://localhost:$PORT/platform/
  Health         http://localhost:$PORT/healthz
  Daraja sim     http://127.0.0.1:$DARAJA_PORT/ (M-Pesa sandbox simulator, shortcode 174379)
  Pay page       http://demo.localhost:$PORT/pay/ (what a suspended subscriber sees)

  Logins (password demo-pass-2026):
    platform admin  platform@ispops.local   (on http://localhost:$PORT/)
    owner           owner@demo.ispops.local
    admin           admin@demo.ispops.local
    finance         finance@demo.ispops.local
    support         support@demo.ispops.local
    technician      tech@demo.ispops.local

MSG
wait
