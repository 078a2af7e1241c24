// The whole service for the end-to-end test, each part real: a migrated PostgreSQL database
// and a Redis prefix of its own (libs/testkit), the compiled API as a process, a pipeline of
// stage-node processes on a tiny random model (the stage-node launcher), and the dashboard
// built with `next build` (only when its sources changed) and served by `next start`.
import {
  createPrismaClient,
  createTestDatabase,
  deleteRedisPrefix,
  redisPrefix,
  seedDemo,
  testEnv,
  testRedis,
  type PrismaClient,
  type TestDatabase,
} from '@pipedec/testkit';
import { writeRandomCheckpoint } from '@pipedec/testkit/model';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { freePort, LocalCluster, STAGE_MAIN } from '@pipedec/testkit/local-cluster';

export const ROOT = path.resolve(import.meta.dirname, '../../..');
export const DASHBOARD_DIR = path.join(ROOT, 'apps/dashboard');
const API_MAIN = path.join(ROOT, 'apps/api/dist/main.js');
const NEXT_BIN = path.join(ROOT, 'node_modules/next/dist/bin/next');

export const ADMIN = { email: 'admin@e2e.local', password: 'e2e-admin-password' };
export const MODEL_NAME = 'tiny-random';

/** Tiny random target and draft; the vocabulary covers the byte-level tokenizer. */
const TARGET = {
  layers: 4,
  hidden: 32,
  heads: 4,
  kvHeads: 2,
  intermediate: 64,
  vocab: 320,
  dtype: 'f32' as const,
  tied: false,
  maxPositions: 512,
};

export interface Stack {
  apiUrl: string;
  dashboardUrl: string;
  prisma: PrismaClient;
  logs(): string;
  stop(): Promise<void>;
}

interface Proc {
  name: string;
  child: ChildProcess;
  log: string[];
}

function startProcess(name: string, args: string[], env: Record<string, string>, cwd = ROOT): Proc {
  const child = spawn(process.execPath, args, {
    cwd,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: os.tmpdir(), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log: string[] = [];
  child.stdout?.on('data', (d: Buffer) => log.push(d.toString()));
  child.stderr?.on('data', (d: Buffer) => log.push(d.toString()));
  return { name, child, log };
}

async function stopProcess(p: Proc): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  const exited = once(p.child, 'exit');
  p.child.kill('SIGTERM');
  const timer = setTimeout(() => p.child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

/** Polls `url` until it answers with a status below 500 (or `ok` accepts it). */
async function waitHttp(url: string, proc: Proc, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (proc.child.exitCode !== null) {
      throw new Error(`${proc.name} exited with ${proc.child.exitCode}:\n${proc.log.join('')}`);
    }
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
      if (res.status < 500) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      throw new Error(
        `${proc.name} did not answer ${url} in ${timeoutMs} ms:\n${proc.log.join('')}`,
      );
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function newestMtime(target: string): Promise<number> {
  const s = await stat(target);
  if (!s.isDirectory()) return s.mtimeMs;
  let newest = 0;
  for (const entry of await readdir(target)) {
    if (entry === 'node_modules' || entry === '.next' || entry === 'test') continue;
    newest = Math.max(newest, await newestMtime(path.join(target, entry)));
  }
  return newest;
}

/**
 * Runs `next build` unless .next holds a build made from the current sources (the dashboard
 * and the contracts it bundles), so repeated runs pay for the build once. The stamp records
 * the sources' newest mtime as read before the build began, so an edit made during a build
 * still triggers the next one.
 */
export async function buildDashboard(): Promise<void> {
  const stamp = path.join(DASHBOARD_DIR, '.next/e2e-sources-mtime');
  const sources = Math.max(
    await newestMtime(DASHBOARD_DIR),
    await newestMtime(path.join(ROOT, 'libs/contracts/src')),
  );
  if (existsSync(stamp) && Number(await readFile(stamp, 'utf8')) >= sources) return;
  const p = startProcess(
    'next build',
    [NEXT_BIN, 'build'],
    { NODE_ENV: 'production' },
    DASHBOARD_DIR,
  );
  const [code] = (await once(p.child, 'exit')) as [number | null];
  if (code !== 0) throw new Error(`next build failed (${code}):\n${p.log.join('')}`);
  await writeFile(stamp, String(sources));
}

export async function startStack(): Promise<Stack> {
  for (const file of [API_MAIN, STAGE_MAIN]) {
    if (!existsSync(file)) throw new Error(`${file} is missing: run \`npm run build\` first`);
  }
  const cleanup: (() => Promise<unknown>)[] = [];
  const procs: Proc[] = [];
  let cluster: LocalCluster | null = null;
  const stop = async () => {
    await Promise.allSettled(procs.map(stopProcess));
    await cluster?.stop();
    for (const f of cleanup.reverse()) await f().catch(() => undefined);
  };
  try {
    const [db, models] = await Promise.all([createTestDatabase(), writeModels()]);
    cleanup.push(
      () => db.drop(),
      () => rm(models.dir, { recursive: true, force: true }),
    );
    const prisma = createPrismaClient(db.url, { poolSize: 2 });
    cleanup.push(() => prisma.$disconnect());
    await seedDemo(prisma, { adminEmail: ADMIN.email, adminPassword: ADMIN.password });
    const prefix = redisPrefix();
    const redis = testRedis();
    cleanup.push(async () => {
      await deleteRedisPrefix(redis, prefix);
      redis.disconnect();
    });
    const redisUrl = testEnv().TEST_REDIS_URL;

    const apiPort = await freePort();
    const apiUrl = `http://127.0.0.1:${apiPort}`;
    const api = startProcess('api', [API_MAIN], {
      NODE_ENV: 'test',
      DATABASE_URL: db.url,
      REDIS_URL: redisUrl,
      REDIS_PREFIX: prefix,
      API_HOST: '127.0.0.1',
      API_PORT: String(apiPort),
      MODEL_NAME,
      MODEL_DIR: models.target,
    });
    procs.push(api);

    const [, startedCluster] = await Promise.all([
      waitHttp(`${apiUrl}/health`, api, 60_000),
      LocalCluster.start({
        pipelineId: 'e2e',
        stages: 2,
        checkpointDir: models.target,
        draftCheckpointDir: models.draft,
        redisUrl,
        redisPrefix: prefix,
        env: { MODEL_NAME, HEARTBEAT_MS: '500', REGISTRY_TTL_MS: '3000' },
        readyTimeoutMs: 120_000,
      }),
      buildDashboard(),
    ]);
    cluster = startedCluster;

    const dashPort = await freePort();
    const dashboardUrl = `http://127.0.0.1:${dashPort}`;
    const dash = startProcess(
      'dashboard',
      [NEXT_BIN, 'start', '-p', String(dashPort), '-H', '127.0.0.1'],
      { NODE_ENV: 'production', API_URL: apiUrl },
      DASHBOARD_DIR,
    );
    procs.push(dash);
    await waitHttp(`${dashboardUrl}/login`, dash, 60_000);

    return {
      apiUrl,
      dashboardUrl,
      prisma,
      logs: () =>
        procs.map((p) => `--- ${p.name}\n${p.log.join('').slice(-4000)}`).join('\n') +
        (cluster ? `\n--- stage 0\n${cluster.logs(0).slice(-4000)}` : ''),
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

async function writeModels(): Promise<{ dir: string; target: string; draft: string }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pipedec-dashboard-e2e-'));
  const target = path.join(dir, 'target');
  const draft = path.join(dir, 'draft');
  await writeRandomCheckpoint(target, { ...TARGET, seed: 17 });
  await writeRandomCheckpoint(draft, { ...TARGET, layers: 1, seed: 17 });
  return { dir, target, draft };
}

export type { TestDatabase };
