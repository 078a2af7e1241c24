// What the load benchmarks (bench:batch, bench:batching) share: a client that enqueues one
// generation job on a real pipeline and follows its Redis event stream to the end, the CPU a
// process tree has used, and quantiles.
import {
  decodeEvent,
  EVENT_FIELD,
  GENERATION_JOB_NAME,
  type ConcreteMethod,
  type FinishReason,
  type GenerationJob,
} from '@pipedec/contracts';
import { Job, type Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { GenerationSummary } from '../apps/stage-node/dist/head/generation-consumer.js';

/** The q-quantile of xs (nearest rank below); NaN for none. */
export function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

async function childrenOf(pid: number): Promise<number[]> {
  const out: number[] = [];
  try {
    const tasks = (await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8')).trim();
    for (const c of tasks.split(' ').filter(Boolean)) out.push(Number(c));
  } catch {
    // gone, or no children file
  }
  return out;
}

/**
 * CPU seconds (user + system) a process and its live descendants have used, from /proc (a
 * stage started through `ip netns exec` may run as a child of the pid its launcher knows).
 */
export async function cpuSeconds(pid: number): Promise<number> {
  let stat: string;
  try {
    stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return 0; // gone
  }
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  let total = (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks
  for (const c of await childrenOf(pid)) total += await cpuSeconds(c);
  return total;
}

export interface RequestSpec {
  method: ConcreteMethod;
  width: number;
  prompt: number[];
  maxTokens: number;
  /** The prompt's greedy continuation is known to run all maxTokens: fewer is an error. */
  exact?: boolean;
}

export interface RequestTrace {
  /** Epoch ms at enqueue, and each token event's `at` (the head's clock, same host). */
  enqueuedAt: number;
  tokenAt: number[];
  tokenIds: number[];
  finishReason: FinishReason;
  summary: GenerationSummary;
}

/** The job's result: the head writes `done` to the stream a moment before BullMQ completes it. */
async function jobResult(queue: Queue, requestId: string): Promise<GenerationSummary> {
  for (let i = 0; i < 2000; i++) {
    const j = await Job.fromId(queue, requestId);
    if (j?.failedReason) throw new Error(`${requestId} failed: ${j.failedReason}`);
    if (j?.finishedOn) return j.returnvalue as GenerationSummary;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`${requestId}: done event but no job result after 10 s`);
}

/**
 * Enqueues one greedy job and follows its event stream until `done`; throws on an error event,
 * on a silence of 60 s, and when the tokens streamed disagree with the usage the job reports
 * (gaps in the indices, a count other than completionTokens, or fewer than asked without a stop,
 * or at all with `exact`).
 */
export async function runRequest(
  queue: Queue,
  reader: Redis,
  prefix: string,
  spec: RequestSpec,
): Promise<RequestTrace> {
  const requestId = randomUUID();
  const eventsKey = `${prefix}req:${requestId}:events`;
  const job: GenerationJob = {
    version: 1,
    requestId,
    tenantId: randomUUID(),
    model: 'bench',
    prompt: { kind: 'tokens', tokenIds: spec.prompt },
    promptTokens: spec.prompt.length,
    maxTokens: spec.maxTokens,
    sampling: { temperature: 0, topP: 1, seed: 0 },
    method: spec.method,
    width: spec.method === 'pp' ? 1 : spec.width,
    stop: [],
    eventsKey,
    cancelKey: `${prefix}req:${requestId}:cancel`,
    enqueuedAt: Date.now(),
  };
  await queue.add(GENERATION_JOB_NAME, job, { jobId: requestId });
  const tokenAt: number[] = [];
  const tokenIds: number[] = [];
  let last = '0';
  for (;;) {
    const res = await reader.xread('BLOCK', 60_000, 'STREAMS', eventsKey, last);
    if (!res) throw new Error(`${spec.method} ${requestId}: no event for 60 s`);
    for (const [id, fields] of res[0][1]) {
      last = id;
      const e = decodeEvent(fields[fields.indexOf(EVENT_FIELD) + 1]);
      if (e.type === 'token') {
        if (e.index !== tokenIds.length) {
          throw new Error(`${spec.method} ${requestId}: token ${e.index} after ${tokenIds.length}`);
        }
        tokenAt.push(e.at);
        tokenIds.push(e.tokenId);
      } else if (e.type === 'error') {
        throw new Error(`${spec.method} ${requestId} failed: ${e.code} ${e.message}`);
      } else if (e.type === 'done') {
        const n = tokenIds.length;
        if (
          n !== e.usage.completionTokens ||
          n > spec.maxTokens ||
          e.finishReason === 'cancelled' ||
          ((e.finishReason === 'length' || spec.exact) && n !== spec.maxTokens)
        ) {
          throw new Error(
            `${spec.method} ${requestId}: ${n} token events, usage ${e.usage.completionTokens}, max ${spec.maxTokens}, finish ${e.finishReason}`,
          );
        }
        const summary = await jobResult(queue, requestId);
        return {
          enqueuedAt: job.enqueuedAt,
          tokenAt,
          tokenIds,
          finishReason: e.finishReason,
          summary,
        };
      }
    }
  }
}
