import { Injectable } from '@nestjs/common';
import {
  checkPipeline,
  kvRowsCapacity,
  kvTreeRows,
  parseStageRegistration,
  registryKey,
  registryPipelinesKey,
  type StageRegistration,
} from '@pipedec/contracts';
import { Database } from '../infra/prisma.provider.js';
import { RedisConnections } from '../infra/redis.provider.js';

export interface Check {
  ok: boolean;
  latencyMs: number;
  error?: string;
}

export interface PipelineHealth {
  id: string;
  ready: boolean;
  stages: number;
  problems: string[];
  /**
   * The KV memory its stages announce (contracts kv-budget.ts): the most rows one request may
   * hold on all of them (null: unbounded), the rows of its smallest tree, and the context
   * window. Null when its head announces none.
   */
  kv: { capacityRows: number | null; treeRows: number; maxPositions: number } | null;
}

export interface Health {
  status: 'ok' | 'degraded' | 'down';
  database: Check;
  redis: Check;
  pipelines: { ready: number; total: number; items: PipelineHealth[] };
}

@Injectable()
export class HealthService {
  constructor(
    private readonly db: Database,
    private readonly redis: RedisConnections,
  ) {}

  async check(): Promise<Health> {
    const [database, redis] = await Promise.all([
      timed(() => this.db.ping()),
      timed(() => this.redis.ping()),
    ]);
    const items = redis.ok ? await this.pipelines().catch(() => []) : [];
    const ready = items.filter((p) => p.ready).length;
    const status = !database.ok || !redis.ok ? 'down' : ready === 0 ? 'degraded' : 'ok';
    return { status, database, redis, pipelines: { ready, total: items.length, items } };
  }

  /** Pipelines from the stage registry (see libs/contracts stage/registry.ts). */
  async pipelines(): Promise<PipelineHealth[]> {
    const r = this.redis.command;
    const p = this.redis.prefix;
    const ids = (await r.smembers(registryPipelinesKey(p))).sort();
    const out: PipelineHealth[] = [];
    for (const id of ids) {
      const head = parseStageRegistration(await r.get(registryKey(p, id, 0)));
      const count = head?.stageCount ?? 1;
      const keys = Array.from({ length: count }, (_, s) => registryKey(p, id, s));
      const found = (await r.mget(...keys)).map((raw) => parseStageRegistration(raw));
      const state = checkPipeline(id, count, found);
      out.push({
        id,
        ready: state.whole,
        stages: found.filter(Boolean).length,
        problems: state.whole ? [] : state.problems,
        kv: pipelineKv(found, count),
      });
    }
    return out;
  }
}

function pipelineKv(
  found: readonly (StageRegistration | undefined)[],
  stageCount: number,
): PipelineHealth['kv'] {
  const head = found[0]?.kv;
  if (!head) return null;
  const capacity = kvRowsCapacity(found.flatMap((r) => (r?.kv ? [r.kv] : [])));
  return {
    capacityRows: Number.isFinite(capacity) ? capacity : null,
    treeRows: kvTreeRows(1, stageCount, head.treeDepth),
    maxPositions: head.maxPositions,
  };
}

async function timed(fn: () => Promise<void>): Promise<Check> {
  const start = performance.now();
  try {
    await withTimeout(fn(), 2000);
    return { ok: true, latencyMs: Math.round(performance.now() - start) };
  } catch (e) {
    return {
      ok: false,
      latencyMs: Math.round(performance.now() - start),
      error: e instanceof Error ? e.message : String(e),
    };
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
