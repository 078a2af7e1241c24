// Boots the real API against a database and Redis prefix of its own (libs/testkit), listening
// on a random port. Shared by the integration specs.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { jest } from '@jest/globals';
import type { INestApplication } from '@nestjs/common';
import { createPrismaClient, seedDemo, type PrismaClient } from '@pipedec/db';
import {
  createTestDatabase,
  deleteRedisPrefix,
  redisPrefix,
  testEnv,
  testRedis,
  type TestDatabase,
} from '@pipedec/testkit';
import { freePort } from '@pipedec/testkit/local-cluster';
import { writeRandomCheckpoint } from '@pipedec/testkit/model';
import type { Redis } from 'ioredis';
import { createApp } from '../src/app.js';
import { parseApiConfig, type ApiConfig } from '../src/config/api-config.js';
import { Clock } from '../src/infra/clock.js';

// Integration tests share two cores with the rest of the suite: allow for a slow machine.
jest.setTimeout(60_000);

export const ADMIN = { email: 'admin@test.local', password: 'admin-password-1' };

export interface TestApi {
  app: INestApplication;
  url: string;
  config: ApiConfig;
  /** The environment it was configured from (for a replica in a process of its own). */
  env: Record<string, string>;
  prisma: PrismaClient;
  redis: Redis;
  prefix: string;
  demoTenantId: string;
  demoKey: string;
  close(): Promise<void>;
}

export const MODEL = 'test-model';

/** A tiny random checkpoint: the API needs only its (byte-level) tokenizer. */
async function tokenizerDir(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'pipedec-api-test-'));
  await writeRandomCheckpoint(dir, {
    layers: 1,
    hidden: 16,
    heads: 2,
    kvHeads: 1,
    intermediate: 32,
    vocab: 320,
    seed: 1,
    dtype: 'f32',
    tied: true,
  });
  return dir;
}

export async function startTestApi(env: Record<string, string> = {}): Promise<TestApi> {
  const db: TestDatabase = await createTestDatabase();
  const modelDir = await tokenizerDir();
  const prefix = redisPrefix();
  const apiEnv: Record<string, string> = {
    NODE_ENV: 'test',
    DATABASE_URL: db.url,
    REDIS_URL: testEnv().TEST_REDIS_URL,
    REDIS_PREFIX: prefix,
    API_PORT: '0',
    MODEL_NAME: MODEL,
    MODEL_DIR: modelDir,
    // Most specs use a fake head (test/fake-head.ts), which does not register as a pipeline,
    // or none: they admit without one. Specs with real stage processes set 'false'.
    ADMIT_WITHOUT_PIPELINE: 'true',
    ...env,
  };
  const config = parseApiConfig(apiEnv);
  const prisma = createPrismaClient(db.url, { poolSize: 3 });
  const seeded = await seedDemo(prisma, { adminEmail: ADMIN.email, adminPassword: ADMIN.password });
  const app = await createApp(config);
  await app.listen(0, '127.0.0.1');
  const server = app.getHttpServer() as import('node:http').Server;
  const address = server.address() as { port: number };
  const redis = testRedis();
  return {
    app,
    url: `http://127.0.0.1:${address.port}`,
    config,
    env: apiEnv,
    prisma,
    redis,
    prefix,
    demoTenantId: seeded.tenantId,
    demoKey: seeded.createdApiKey!.secret,
    async close() {
      await app.close();
      await prisma.$disconnect();
      await deleteRedisPrefix(redis, prefix);
      redis.disconnect();
      await db.drop();
      await rm(modelDir, { recursive: true, force: true });
    },
  };
}

/**
 * Another replica of the same deployment: the same database, Redis prefix and model, its own
 * process state (caches, queue handle, sweeper), listening on a port of its own.
 */
export async function startReplica(api: TestApi): Promise<{ url: string; app: INestApplication }> {
  const app = await createApp(api.config);
  await app.listen(0, '127.0.0.1');
  const address = (app.getHttpServer() as import('node:http').Server).address() as {
    port: number;
  };
  return { url: `http://127.0.0.1:${address.port}`, app };
}

/**
 * Another replica in a process of its own: the compiled API (apps/api/dist/main.js, built by
 * `npm run build`) on the same database, Redis prefix and model, so that a spec can kill it
 * (SIGKILL: a crash, nothing runs on its way out). Resolves once it answers.
 */
export async function startApiProcess(
  api: TestApi,
): Promise<{ url: string; child: ChildProcess; kill(): Promise<void> }> {
  const port = await freePort();
  const main = path.join(import.meta.dirname, '../dist/main.js');
  const child = spawn(process.execPath, [main], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...api.env, API_PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log: string[] = [];
  child.stdout?.on('data', (d: Buffer) => log.push(d.toString()));
  child.stderr?.on('data', (d: Buffer) => log.push(d.toString()));
  const exited = once(child, 'exit');
  const url = `http://127.0.0.1:${port}`;
  await waitFor(async () => {
    if (child.exitCode !== null) throw new Error(`API process exited:\n${log.join('')}`);
    return fetch(`${url}/health/live`).then(
      (r) => (r.ok ? true : undefined),
      () => undefined,
    );
  }, 60_000);
  return {
    url,
    child,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}

export interface Reply<T = Record<string, unknown>> {
  status: number;
  headers: Headers;
  body: T;
}

/** fetch + JSON, for terse specs. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- specs read fields loosely
export async function call<T = Record<string, any>>(
  api: Pick<TestApi, 'url'>,
  method: string,
  path: string,
  options: { token?: string; body?: unknown; rawBody?: string } = {},
): Promise<Reply<T>> {
  const headers: Record<string, string> = {};
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  let body: string | undefined;
  if (options.rawBody !== undefined || options.body !== undefined) {
    headers['content-type'] = 'application/json';
    body = options.rawBody ?? JSON.stringify(options.body);
  }
  const res = await fetch(api.url + path, { method, headers, body });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: (text ? JSON.parse(text) : {}) as T };
}

export async function adminLogin(api: TestApi): Promise<string> {
  const res = await call<{ token: string }>(api, 'POST', '/admin/login', { body: ADMIN });
  if (res.status !== 200) throw new Error(`admin login failed: ${res.status}`);
  return res.body.token;
}

export interface ErrorFields {
  type: string;
  code: string | null;
  message: string;
  param: string | null;
}

/** The OpenAI-shaped error of a reply. */
export function errorOf(res: Reply<Record<string, unknown>>): ErrorFields {
  return (res.body as { error: ErrorFields }).error;
}

/** Polls `fn` until it returns something other than undefined (or fails after `ms`). */
export async function waitFor<T>(
  fn: () => T | undefined | Promise<T | undefined>,
  ms = 30_000,
): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Sets an app's Clock `ms` ahead of real time (a controllable clock, instead of sleeping until
 * a deadline passes); returns what puts it back to real time.
 */
export function moveClock(app: INestApplication, ms: number): () => void {
  const clock = app.get(Clock);
  clock.now = () => new Date(Date.now() + ms);
  clock.nowMs = () => Date.now() + ms;
  return () => {
    delete (clock as Partial<Clock>).now;
    delete (clock as Partial<Clock>).nowMs;
  };
}
