// GET /health: 200 while this stage takes work, 503 while it starts, drains or (on the head)
// while its pipeline is not whole or is still warming up (head/warm-up.ts). Public on purpose: orchestrators and the launcher poll it
// without credentials, and it reveals no request data.
import { Controller, Get, HttpStatus, Inject, Res } from '@nestjs/common';
import { runtimeCpuMs } from '@pipedec/model';
import { isWarming, type WarmUpStatus } from '../head/warm-up.js';
import { StageNode } from '../node/stage-node.js';

export interface HealthBody {
  ready: boolean;
  pipelineId: string;
  stageIndex: number;
  stageCount: number;
  layerStart: number;
  layerEnd: number;
  role: 'head' | 'stage';
  /** Head only: the whole pipeline is registered and matching (jobs are taken). */
  pipelineWhole: boolean | null;
  problems: string[];
  busy: number;
  residentBytes: number;
  /** Weights this stage holds (its own layers only; the head's draft not included). */
  weightBytes: number;
  /**
   * Compute calls since start and the packets and rows they computed: packets / calls above 1
   * means requests shared calls (batching); maxRequests is the most requests one call took.
   */
  batching: { calls: number; packets: number; rows: number; maxRequests: number; limit: number };
  /**
   * CPU ms this process has spent inside ONNX Runtime since start (the head's draft included):
   * set against the process's CPU it says what the packet path around the runtime costs.
   */
  runtimeCpuMs: number;
  /** KV memory held now by its sequences, against its budget (null: unbounded). */
  kv: { usedBytes: number; limitBytes: number | null; sequences: number };
  /** Head only: the warm-up before the first job (state "off" when WARMUP_TOKENS is 0). */
  warmUp: WarmUpStatus | null;
}

@Controller('health')
export class HealthController {
  constructor(@Inject(StageNode) private readonly node: StageNode) {}

  @Get()
  health(@Res({ passthrough: true }) res: { status(code: number): unknown }): HealthBody {
    const n = this.node;
    const status = n.status;
    const memory = n.shard.memory();
    const warmUp = n.warmUp?.() ?? null;
    const warming = warmUp !== null && isWarming(warmUp);
    const ready = n.isReady && (!n.isHead || (status.whole && !warming));
    res.status(ready ? HttpStatus.OK : HttpStatus.SERVICE_UNAVAILABLE);
    return {
      ready,
      pipelineId: n.config.pipelineId,
      stageIndex: n.config.stageIndex,
      stageCount: n.config.stageCount,
      layerStart: n.shard.layerStart,
      layerEnd: n.shard.layerEnd,
      role: n.isHead ? 'head' : 'stage',
      pipelineWhole: n.isHead ? status.whole : null,
      problems: !n.isHead
        ? []
        : warming
          ? [...status.problems, `warming up: ${warmUp.tokens}/${warmUp.targetTokens} tokens`]
          : status.problems,
      busy: n.busy,
      residentBytes: process.memoryUsage().rss,
      weightBytes: memory.weightBytes,
      batching: { ...n.runtime.batchStats, limit: n.config.batch.requests },
      runtimeCpuMs: runtimeCpuMs(),
      kv: {
        usedBytes: memory.kvBytes,
        limitBytes: Number.isFinite(memory.kvLimitBytes) ? memory.kvLimitBytes : null,
        sequences: memory.sequences,
      },
      warmUp,
    };
  }
}
