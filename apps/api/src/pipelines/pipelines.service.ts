import { Injectable } from '@nestjs/common';
import {
  checkPipeline,
  decodeEvent,
  eventsKey,
  EVENT_FIELD,
  parseStageRegistration,
  registryKey,
  registryPipelinesKey,
  STALE_AFTER_MS,
  type PipelinesSnapshot,
  type StageRegistration,
  type StageView,
} from '@pipedec/contracts';
import { FairScheduler } from '../generation/fair-scheduler.js';
import { RequestsRepository } from '../generation/requests.repository.js';
import { Clock } from '../infra/clock.js';
import { RedisConnections } from '../infra/redis.provider.js';
import { pipelineBatch } from './pipeline-batch.js';

/** Recent requests a pipeline's hit rate and tokens per timestep are averaged over. */
const RECENT = 50;

/** The live pipelines: the stage registry, the queue, and recent speculative statistics. */
@Injectable()
export class PipelinesService {
  constructor(
    private readonly redis: RedisConnections,
    private readonly scheduler: FairScheduler,
    private readonly requests: RequestsRepository,
    private readonly clock: Clock,
  ) {}

  async snapshot(): Promise<PipelinesSnapshot> {
    const r = this.redis.command;
    const p = this.redis.prefix;
    const now = this.clock.nowMs();
    const [ids, counts, fair, active] = await Promise.all([
      r.smembers(registryPipelinesKey(p)),
      this.scheduler.queue.getJobCounts('waiting', 'prioritized'),
      this.scheduler.pendingCount(),
      this.activeByPipeline(),
    ]);
    const pipelines = [];
    for (const id of ids.sort()) {
      const head = parseStageRegistration(await r.get(registryKey(p, id, 0)));
      const count = head?.stageCount ?? 1;
      const found = (
        await r.mget(...Array.from({ length: count }, (_, s) => registryKey(p, id, s)))
      ).map((raw) => parseStageRegistration(raw));
      const state = checkPipeline(id, count, found);
      const stages: StageView[] = found.map((reg, s) => stageView(reg, s, count, now));
      const stats = await this.requests.recentPipelineStats(id, RECENT);
      pipelines.push({
        pipelineId: id,
        whole: state.whole,
        problems: state.whole ? [] : state.problems,
        stages,
        recentRequests: stats.requests,
        timesteps: stats.timesteps,
        hitRate: stats.hitRate,
        tokensPerTimestep: stats.tokensPerTimestep,
        time: stats.time,
        activeRequests: active.get(id) ?? 0,
        batch: pipelineBatch(found, now),
      });
    }
    return {
      at: now,
      queueDepth: fair + (counts.waiting ?? 0) + (counts.prioritized ?? 0),
      pipelines,
    };
  }

  /** Running jobs per pipeline, from the `started` record of each active job's stream. */
  private async activeByPipeline(): Promise<Map<string, number>> {
    const jobs = await this.scheduler.queue.getJobs(['active']);
    const out = new Map<string, number>();
    for (const job of jobs) {
      if (!job.id) continue;
      const last = await this.redis.command.xrevrange(
        eventsKey(this.redis.prefix, job.id),
        '+',
        '-',
      );
      for (const [, fields] of last) {
        const i = fields.indexOf(EVENT_FIELD);
        const event = i >= 0 ? safeDecode(fields[i + 1]) : undefined;
        if (event?.type === 'started') {
          out.set(event.pipelineId, (out.get(event.pipelineId) ?? 0) + 1);
          break;
        }
      }
    }
    return out;
  }
}

function stageView(
  reg: StageRegistration | undefined,
  stageIndex: number,
  stageCount: number,
  now: number,
): StageView {
  if (!reg) {
    return {
      stageIndex,
      stageCount,
      layerStart: 0,
      layerEnd: 1,
      numLayers: 1,
      address: '',
      health: 'missing',
      utilisation: null,
      heartbeatAt: null,
    };
  }
  const health = !reg.ready
    ? 'not_ready'
    : now - reg.heartbeatAt > STALE_AFTER_MS
      ? 'stale'
      : 'healthy';
  return {
    stageIndex: reg.stageIndex,
    stageCount: reg.stageCount,
    layerStart: reg.layerStart,
    layerEnd: reg.layerEnd,
    numLayers: reg.numLayers,
    address: reg.address,
    health,
    // A stale entry's figure describes a window that ended long ago.
    utilisation: health === 'stale' ? null : (reg.utilisation ?? null),
    heartbeatAt: reg.heartbeatAt,
  };
}

function safeDecode(raw: string | undefined) {
  try {
    return raw === undefined ? undefined : decodeEvent(raw);
  } catch {
    return undefined;
  }
}
