#!/usr/bin/env bash
# Starts the service on this machine (after `npm run setup`): applies the migrations, seeds
# the demo tenant, key and admin, starts a pipeline of stage nodes on the bundled demo model
# (when models/demo-target is present), serves the dashboard and runs the API in the
# foreground; Ctrl-C stops all.
# Optional overrides come from .env (see .env.example).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -f .env ]; then
  set -a
  # shellcheck disable=SC1091
  . ./.env
  set +a
fi
# The API and the stage nodes must agree on the model's name (jobs name it).
export MODEL_NAME="${MODEL_NAME:-pipedec-demo}"

# The dashboard forwards each browser's address to the API for admin login limiting; the API
# believes it only with this shared secret. A fresh one per start unless .env sets one.
export DASHBOARD_FORWARD_SECRET="${DASHBOARD_FORWARD_SECRET:-$(node -e "process.stdout.write(require('crypto').randomBytes(24).toString('base64url'))")}"

npm run --silent db:migrate
npm run --silent db:seed

pipeline_pid=""
api_pid=""
stop_all() {
  for pid in $api_pid $pipeline_pid; do
    if kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid" 2>/dev/null || true; fi
  done
  for pid in $api_pid $pipeline_pid; do wait "$pid" 2>/dev/null || true; done
}
# Both run in the background and the script waits, so a signal to this script (not only
# Ctrl-C to the whole terminal group) stops them too.
trap stop_all EXIT
trap 'exit 130' INT TERM

if [ -f "${STAGE_CHECKPOINT_DIR:-models/demo-target}/config.json" ]; then
  bash scripts/start-pipeline.sh &
  pipeline_pid=$!
else
  echo "start: no demo model in models/demo-target; the API runs without stage nodes (/health says degraded)"
fi

# The admin dashboard (built by `npm run setup`) talks to the API on its loopback address.
API_URL="http://127.0.0.1:${API_PORT:-3000}" node node_modules/next/dist/bin/next start apps/dashboard \
  -p "${DASHBOARD_PORT:-3001}" -H "${DASHBOARD_HOST:-127.0.0.1}" &
dashboard_pid=$!
echo "start: dashboard on http://${DASHBOARD_HOST:-127.0.0.1}:${DASHBOARD_PORT:-3001}"

node apps/api/dist/main.js &
api_pid=$!
wait "$api_pid"
