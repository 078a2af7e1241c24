// The stage registry in Redis: what each stage node announces about itself, and the rule that
// decides whether a pipeline is whole. Shared by the stage nodes (the head takes jobs only while
// its pipeline is whole) and by anything that displays the live pipeline.
import { z } from 'zod';

/**
 * One key per stage, `<prefix>stage:<pipeline>:<index>`, expiring unless heartbeats renew it
 * (prefix: the deployment's REDIS_PREFIX, as in jobs/keys.ts).
 */
export function registryKey(prefix: string, pipelineId: string, stageIndex: number): string {
  return `${prefix}stage:${pipelineId}:${stageIndex}`;
}

/** Set of pipeline ids that have registered at least once (the entries themselves expire). */
export function registryPipelinesKey(prefix: string): string {
  return `${prefix}pipelines`;
}

/**
 * Pub/sub channel on which a stage announces each deliberate change of its entry (registered,
 * draining, relinked, gone), so that the head need not read the registry before each job.
 */
export function registryChangedChannel(prefix: string, pipelineId: string): string {
  return `${prefix}stage:${pipelineId}:changed`;
}

/**
 * Counter differences over the last spanMs (about 5 s, utilisation's span): the stage's
 * compute calls and the requests (one packet each) and rows they took, so requests / calls is
 * the requests that shared a timestep's call. The head also says how many requests it runs
 * now and how many tokens it committed in the span; null on the other stages.
 */
export const stageBatchSchema = z.object({
  spanMs: z.number().min(0),
  calls: z.number().int().min(0),
  requests: z.number().int().min(0),
  rows: z.number().int().min(0),
  inFlight: z.number().int().min(0).nullable(),
  tokens: z.number().int().min(0).nullable(),
});
export type StageBatch = z.infer<typeof stageBatchSchema>;

export const stageRegistrationSchema = z
  .object({
    pipelineId: z.string().min(1).max(100),
    stageIndex: z.number().int().min(0),
    stageCount: z.number().int().min(1),
    layerStart: z.number().int().min(0), // inclusive
    layerEnd: z.number().int().min(1), // exclusive
    numLayers: z.number().int().min(1),
    address: z.string().min(1), // gRPC host:port
    /** The frame socket (FRAME_TRANSPORT=tcp) peers send Packets, Verdicts, Decisions to. */
    framesAddress: z.string().min(1).optional(),
    healthUrl: z.string().min(1),
    fingerprint: z.string().min(1), // the target checkpoint's ModelInfo.fingerprint
    ready: z.boolean(),
    /** Random per process start: tells a restarted stage from the one that was there. */
    instanceId: z.string().min(1),
    pid: z.number().int(),
    startedAt: z.number(), // epoch ms
    heartbeatAt: z.number(), // epoch ms
    residentBytes: z.number().int().min(0),
    /**
     * Share of the last 5 s that the stage spent in its model's forward calls, 0..1 (absent:
     * a node that does not measure it).
     */
    utilisation: z.number().min(0).max(1).optional(),
    /** What the stage's compute calls took lately (absent: a node that does not count). */
    batch: stageBatchSchema.optional(),
    /**
     * The instanceId of the process this stage sends its output to (stage + 1; the last stage
     * answers the head), as this stage's peer links know it; null while it knows none. A stage
     * that still links to a replaced process would lose what it sends, so the pipeline is not
     * whole until every stage has caught up with a restart.
     */
    downstream: z.string().min(1).nullable().default(null),
    /**
     * The stage's KV memory (kv-budget.ts StageKv): the head admits a job when its worst case
     * fits on every stage, the API refuses one that never could. Absent: a node that does not
     * announce it, counted as unbounded.
     */
    kv: z
      .object({
        limitBytes: z.number().int().min(0).nullable(),
        bytesPerRow: z.number().int().min(1),
        maxPositions: z.number().int().min(1),
        treeDepth: z.number().int().min(1),
      })
      .optional(),
  })
  .refine((r) => r.stageIndex < r.stageCount, { message: 'stageIndex must be < stageCount' })
  .refine((r) => r.layerStart < r.layerEnd && r.layerEnd <= r.numLayers, {
    message: 'layer range must be non-empty and within numLayers',
  });
export type StageRegistration = z.infer<typeof stageRegistrationSchema>;

/** A registry entry as Redis holds it; undefined when there is none or it is not one. */
export function parseStageRegistration(raw: string | null): StageRegistration | undefined {
  if (raw === null) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    return undefined;
  }
  const r = stageRegistrationSchema.safeParse(json);
  return r.success ? r.data : undefined;
}

export type PipelineState =
  { whole: true; stages: StageRegistration[] } | { whole: false; problems: string[] };

/**
 * A pipeline is whole when every stage 0..stageCount-1 is registered and ready, all agree on
 * the stage count, the layer count and the checkpoint fingerprint, and their layer ranges are
 * contiguous from 0 to numLayers, and each stage links to the current process of the stage
 * after it (the last to the head's). `found` may hold undefined for missing stages.
 */
export function checkPipeline(
  pipelineId: string,
  stageCount: number,
  found: readonly (StageRegistration | undefined)[],
): PipelineState {
  const problems: string[] = [];
  const stages: StageRegistration[] = [];
  for (let s = 0; s < stageCount; s++) {
    const r = found[s];
    if (!r) {
      problems.push(`stage ${s} of pipeline ${pipelineId} is not registered`);
      continue;
    }
    if (r.pipelineId !== pipelineId || r.stageIndex !== s) {
      problems.push(`entry for stage ${s} says pipeline ${r.pipelineId} stage ${r.stageIndex}`);
      continue;
    }
    if (!r.ready) problems.push(`stage ${s} (${r.address}) is not ready`);
    stages.push(r);
  }
  if (stages.length === 0) return { whole: false, problems };
  const head = stages[0];
  for (const r of stages) {
    if (r.stageCount !== stageCount) {
      problems.push(`stage ${r.stageIndex} expects ${r.stageCount} stages, not ${stageCount}`);
    }
    if (r.fingerprint !== head.fingerprint) {
      problems.push(
        `stage ${r.stageIndex} fingerprint ${r.fingerprint} differs from stage ${head.stageIndex}'s ${head.fingerprint}`,
      );
    }
    if (r.numLayers !== head.numLayers) {
      problems.push(
        `stage ${r.stageIndex} has ${r.numLayers} layers in its model, stage ${head.stageIndex} ${head.numLayers}`,
      );
    }
  }
  if (problems.length === 0) {
    let next = 0;
    for (const r of stages) {
      if (r.layerStart !== next) {
        problems.push(
          `stage ${r.stageIndex} starts at layer ${r.layerStart}, expected ${next} (ranges must be contiguous)`,
        );
      }
      next = r.layerEnd;
    }
    if (next !== head.numLayers) {
      problems.push(`the last stage ends at layer ${next}, the model has ${head.numLayers}`);
    }
  }
  if (problems.length === 0 && stageCount > 1) {
    for (const r of stages) {
      const to = stages[(r.stageIndex + 1) % stageCount];
      if (r.downstream !== to.instanceId) {
        problems.push(
          `stage ${r.stageIndex} is not linked to the current process of stage ${to.stageIndex} yet`,
        );
      }
    }
  }
  return problems.length === 0 ? { whole: true, stages } : { whole: false, problems };
}
