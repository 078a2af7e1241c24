#!/usr/bin/env bash
# Writes a migration for the changes in schema.prisma since the committed migrations:
#   npm run migration:new -w @pipedec/db -- add_something
# (`prisma migrate dev` also writes it, but Prisma 6.19's JS schema engine then fails at
# teardown with "null pointer passed to rust"; `migrate diff` runs clean.) Apply it with
# `npm run db:migrate`.
set -euo pipefail
cd "$(dirname "$0")/.."
name="${1:?usage: new-migration.sh NAME}"
sql=$(npx prisma migrate diff --config src/prisma.config.ts \
  --from-migrations migrations --to-schema-datamodel schema.prisma --script)
if grep -q 'This is an empty migration' <<<"$sql"; then
  echo "new-migration: schema.prisma has no changes since the last migration"
  exit 1
fi
dir="migrations/$(date -u +%Y%m%d%H%M%S)_${name}"
mkdir -p "$dir"
printf '%s\n' "$sql" >"$dir/migration.sql"
echo "new-migration: wrote $dir/migration.sql"
