#!/usr/bin/env bash
# Starts a local pipeline of stage nodes (4 by default) on models/demo-target with
# models/demo-draft, after `npm run build`; stops them gracefully on SIGTERM/SIGINT.
# Settings: PIPELINE_STAGES, PIPELINE_ID, STAGE_CHECKPOINT_DIR, STAGE_DRAFT_CHECKPOINT_DIR,
# REDIS_URL, REDIS_PREFIX, STAGE_GRPC_BASE_PORT (50051), STAGE_HEALTH_BASE_PORT (8091),
# WIRE_DTYPE (fp32|fp16), QUEUE_CONCURRENCY. Each stage answers GET /health on its port.
set -euo pipefail
cd "$(dirname "$0")/.."
exec node apps/stage-node/dist/launcher/start-pipeline.js
