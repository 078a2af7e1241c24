// Factories for the cluster tests: tiny random checkpoints, generation jobs on a per-run queue
// prefix, and readers of the per-request event streams.
import {
  decodeEvent,
  eventsKey,
  cancelKey,
  GENERATION_JOB_NAME,
  GENERATION_QUEUE,
  queuePrefix,
  type DecodingMethod,
  type GenerationJob,
  type RequestEvent,
  type Sampling,
} from '@pipedec/contracts';
import { writeRandomCheckpoint } from '@pipedec/model';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { randomUUID } from 'node:crypto';
import path from 'node:path';

export const MODEL_NAME = 'tiny-random';

export const TINY = {
  layers: 16,
  hidden: 32,
  heads: 4,
  kvHeads: 2,
  intermediate: 64,
  vocab: 300,
  dtype: 'f32' as const,
  tied: false,
  maxPositions: 512,
};

export interface Models {
  target: string;
  draft: string; // an unrelated random model: mostly misses and refills
}

export async function writeModels(dir: string): Promise<Models> {
  const target = path.join(dir, 'target');
  const draft = path.join(dir, 'draft');
  await writeRandomCheckpoint(target, { ...TINY, seed: 17 });
  await writeRandomCheckpoint(draft, { ...TINY, layers: 2, seed: 18 });
  return { target, draft };
}

export const GREEDY: Sampling = { temperature: 0, topP: 1, seed: 0 };
export const SAMPLED: Sampling = { temperature: 0.9, topP: 0.9, seed: 2024 };

export function generationQueue(redis: Redis, prefix: string): Queue {
  return new Queue(GENERATION_QUEUE, { connection: redis, prefix: queuePrefix(prefix) });
}

export interface JobSpec {
  prompt: number[];
  method: DecodingMethod;
  sampling: Sampling;
  maxTokens: number;
  width?: number;
  attempts?: number;
  model?: string;
}

export async function enqueue(queue: Queue, prefix: string, spec: JobSpec): Promise<GenerationJob> {
  const requestId = randomUUID();
  const job: GenerationJob = {
    version: 1,
    requestId,
    tenantId: randomUUID(),
    model: spec.model ?? MODEL_NAME,
    prompt: { kind: 'tokens', tokenIds: spec.prompt },
    promptTokens: spec.prompt.length,
    maxTokens: spec.maxTokens,
    sampling: spec.sampling,
    method: spec.method,
    width: spec.method === 'pp' ? 1 : (spec.width ?? 4),
    stop: [],
    eventsKey: eventsKey(prefix, requestId),
    cancelKey: cancelKey(prefix, requestId),
    enqueuedAt: Date.now(),
  };
  await queue.add(GENERATION_JOB_NAME, job, {
    jobId: requestId,
    attempts: spec.attempts ?? 1,
    removeOnComplete: true,
  });
  return job;
}

export async function readEvents(redis: Redis, key: string): Promise<RequestEvent[]> {
  const entries = await redis.xrange(key, '-', '+');
  return entries.map(([, fields]) => decodeEvent(fields[1]));
}

/** Polls the stream until `until` holds for its events; throws after timeoutMs. */
export async function waitEvents(
  redis: Redis,
  key: string,
  until: (events: RequestEvent[]) => boolean,
  timeoutMs: number,
): Promise<RequestEvent[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const events = await readEvents(redis, key);
    if (until(events)) return events;
    if (Date.now() > deadline) {
      throw new Error(
        `events of ${key} after ${timeoutMs} ms: ${JSON.stringify(events.slice(-3))}`,
      );
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}

export const ended = (events: RequestEvent[]): boolean =>
  events.some((e) => e.type === 'done' || (e.type === 'error' && !e.retryable));

/** Output token ids of the last attempt, in index order. */
export function outputTokens(events: RequestEvent[]): number[] {
  let start = 0;
  events.forEach((e, i) => {
    if (e.type === 'started') start = i;
  });
  return events.slice(start).flatMap((e) => (e.type === 'token' ? [e.tokenId] : []));
}

/** Deterministic prompts of token ids below the byte range's top. */
export function prompts(count: number, seed: number): number[][] {
  let x = seed;
  const next = () => (x = (Math.imul(x, 1103515245) + 12345) >>> 0);
  return Array.from({ length: count }, () =>
    Array.from({ length: 3 + (next() % 10) }, () => next() % 256),
  );
}
