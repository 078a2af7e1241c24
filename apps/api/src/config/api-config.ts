import { envVar, parseEnv } from '@pipedec/contracts';
import { dbEnvShape } from '@pipedec/db';
import { z } from 'zod';

/** Every variable apps/api reads, with defaults that work on a development machine. */
export const apiEnvShape = {
  ...dbEnvShape,
  NODE_ENV: envVar.enumOf(['development', 'production', 'test'] as const, 'development'),
  API_HOST: envVar.string('127.0.0.1'),
  API_PORT: envVar.port(3000),
  REDIS_URL: envVar.url('redis://127.0.0.1:6379'),
  /** Prefix of every Redis key of this deployment (queue, streams, counters). */
  REDIS_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9:_-]*$/)
    .default('pipedec:'),
  /** Model id served by the pipelines (what GET /v1/models lists). */
  MODEL_NAME: envVar.string('pipedec-demo'),
  /** Checkpoint folder whose tokenizer counts prompt tokens. */
  MODEL_DIR: envVar.string('models/demo-target'),
  BODY_LIMIT_BYTES: envVar.int(256 * 1024, 1024),
  ADMIN_SESSION_TTL_S: envVar.int(8 * 3600, 60),
  /**
   * Consecutive failed admin logins allowed per email and client address; the pair is then
   * blocked for ADMIN_LOGIN_WINDOW_S (even with the right password).
   */
  ADMIN_LOGIN_MAX_ATTEMPTS: envVar.int(5, 1),
  ADMIN_LOGIN_WINDOW_S: envVar.int(15 * 60, 1),
  /** Failed logins per client address (any email) per day before the address is blocked. */
  ADMIN_LOGIN_ADDRESS_MAX_FAILURES: envVar.int(100, 1),
  /**
   * Failed logins per account (any address) per hour before the account refuses addresses it
   * has never signed in from; its owner, from an address that signed in before, still gets in.
   */
  ADMIN_LOGIN_ACCOUNT_MAX_FAILURES: envVar.int(50, 1),
  /**
   * Which proxies' X-Forwarded-For / X-Forwarded-Proto the API believes (Express "trust
   * proxy"): "false" (default: none), "loopback", a hop count, or addresses/subnets
   * separated by commas.
   */
  TRUST_PROXY: z
    .string()
    .regex(/^(true|false|loopback|linklocal|uniquelocal|\d+|[0-9A-Fa-f:.,/ ]+)$/)
    .default('false'),
  /**
   * Shared with the dashboard: with it, the dashboard's X-PipeDec-Client-Address header (the
   * browser's address) is believed for admin login limiting. Unset: the header is ignored.
   */
  DASHBOARD_FORWARD_SECRET: z.string().min(16).optional(),
  /**
   * Bearer token Prometheus sends to scrape GET /metrics on the public port. Unset: the public
   * route answers 403 (metrics hold tokens and spend); scrape METRICS_PORT instead, or set it.
   */
  METRICS_TOKEN: z.string().min(16).optional(),
  /**
   * A port of its own for GET /metrics, on METRICS_HOST, with no token (keep it on an internal
   * network). 0: none.
   */
  METRICS_PORT: envVar.port(0),
  METRICS_HOST: envVar.string('127.0.0.1'),
  /** Label tokens, spend and refusals by tenant id (off: totals only, no tenant ids). */
  METRICS_TENANT_LABELS: envVar.bool(false),
  /** Default output length when a request does not set max_tokens. */
  DEFAULT_MAX_TOKENS: envVar.int(16, 1),
  /** Attempts per job (BullMQ), so a crashed head's job is retried on another pipeline. */
  JOB_ATTEMPTS: envVar.int(2, 1),
  /**
   * A job whose attempt failed on a broken pipeline is retried on the next whole pipeline (any
   * replica); if none takes it within this many seconds it fails with no_pipeline_available.
   */
  PIPELINE_WAIT_S: envVar.int(30, 1),
  /**
   * New requests are refused with 503 no_pipeline_available while no pipeline in the stage
   * registry is whole; this is the Retry-After they carry (about a supervised stage's restart).
   */
  NO_PIPELINE_RETRY_AFTER_S: envVar.int(5, 1),
  /**
   * Admit requests to wait in the queue even while no pipeline is whole (no 503). For tests
   * and benchmarks that measure admission with a fake head or none; not for production.
   */
  ADMIT_WITHOUT_PIPELINE: envVar.bool(false),
  /** Jobs kept waiting in BullMQ; the rest wait in the fair scheduler's per-tenant lists. */
  QUEUE_DEPTH: envVar.int(2, 1),
  /**
   * Most requests waiting to start, all tenants together (the fair scheduler's lists and
   * BullMQ's waiting list; not those a head holds until KV memory frees up, at most its
   * QUEUE_CONCURRENCY). Past it a new request is refused with 503 queue_full and Retry-After
   * QUEUE_FULL_RETRY_AFTER_S, before anything is reserved or billed. 0: no limit. A soft
   * limit: admissions counting at the same moment may each take the last place.
   */
  QUEUE_MAX_WAITING: envVar.int(1000, 0),
  QUEUE_FULL_RETRY_AFTER_S: envVar.int(2, 1),
  /** How often monthly usage and concurrency are reconciled from PostgreSQL. */
  RECONCILE_INTERVAL_S: envVar.int(300, 1),
  /**
   * A job that ended this long ago with no request row is recorded from the job itself: the
   * replica that queued it died before writing the row, which follows the queueing at once.
   */
  UNRECORDED_AFTER_S: envVar.int(30, 1),
};

export type ApiConfig = ReturnType<typeof parseApiConfig>;

export function parseApiConfig(env: Record<string, string | undefined>) {
  return parseEnv('api', apiEnvShape, env);
}

/** Injection token of the parsed configuration. */
export const API_CONFIG = Symbol('API_CONFIG');
