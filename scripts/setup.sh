#!/usr/bin/env bash
# Prepares this machine for the service and its tests: OS packages, PostgreSQL, Redis,
# dependencies. Idempotent: safe on a fresh machine and on one where everything runs.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
command -v pg_ctlcluster >/dev/null 2>&1 || need_pkgs+=(postgresql)
command -v redis-server >/dev/null 2>&1 || need_pkgs+=(redis-server)
[ -x /usr/bin/chromium ] || need_pkgs+=(chromium)
command -v ip >/dev/null 2>&1 || need_pkgs+=(iproute2)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "setup: installing ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_pkgs[@]}"
fi

if ! pg_isready -h 127.0.0.1 -p 5432 -q; then
  echo "setup: starting PostgreSQL"
  cluster=$(pg_lsclusters -h | awk 'NR==1 {print $1" "$2}')
  if [ -z "$cluster" ]; then
    pg_createcluster 15 main
    cluster="15 main"
  fi
  # shellcheck disable=SC2086
  pg_ctlcluster $cluster start
  for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
fi
# Tests connect as the postgres superuser over TCP without a password (as on the dev machines).
if ! psql -h 127.0.0.1 -U postgres -c 'select 1' >/dev/null 2>&1; then
  echo "setup: enabling trust auth for local TCP connections"
  hba=$(su postgres -c "psql -tAc 'show hba_file'")
  sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/' "$hba"
  su postgres -c "psql -c 'select pg_reload_conf()'" >/dev/null
fi

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "setup: starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 1; done
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
npm run build
# The dashboard is a Next.js app outside the tsc project references: it has its own build.
npm run build -w @pipedec/dashboard
