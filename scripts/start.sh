#!/usr/bin/env bash
# Starts the service on this machine (after `npm run setup`): applies the migrations, seeds
# the demo tenant, key and admin, then runs the API in the foreground. Stage nodes and the
# dashboard join here as they land. Optional overrides come from .env (see .env.example).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -f .env ]; then
  set -a
  # shellcheck disable=SC1091
  . ./.env
  set +a
fi
npm run --silent db:migrate
npm run --silent db:seed
exec node apps/api/dist/main.js
