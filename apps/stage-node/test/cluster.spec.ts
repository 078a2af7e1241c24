// Real stage processes on loopback: a pipeline of 4 `node dist/main.js` processes consumes the
// generation queue and must emit exactly the tokens of plain autoregressive decoding (AR, run
// here on the whole model) with PP, STPP and PipeDec, greedy and seeded sampling; a second
// pipeline can serve the same queue; killing a middle stage mid-request fails the request with
// a clean error event within 5 s (or retries it when the job allows), and restarting that one
// stage restores service; SIGTERM drains the head gracefully; fuzzed frames sent to a middle
// stage (on its frame socket and on gRPC) are refused one by one while it keeps serving.
import { jest } from '@jest/globals';
import {
  cancelChannel,
  kvRowsFor,
  kvSlotsFor,
  kvTreeRows,
  parseStageRegistration,
  registryKey,
  type RequestEvent,
} from '@pipedec/contracts';
import { generateAR } from '@pipedec/engine';
import { loadTokenizer, openShard, type LayerShard } from '@pipedec/model';
import type { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { dialStage } from '../src/grpc/grpc-options.js';
import { SocketLink } from '../src/socket/socket-link.js';
import { decodePackets, encodePackets } from '../src/wire/frame.js';
import { LocalCluster, STAGE_MAIN } from '@pipedec/testkit/local-cluster';
import {
  ended,
  enqueue,
  generationQueue,
  GREEDY,
  MODEL_NAME,
  outputTokens,
  prompts,
  SAMPLED,
  waitEvents,
  writeModels,
  type JobSpec,
  type Models,
} from './cluster-helpers.js';

jest.setTimeout(300_000);

const REDIS_URL = 'redis://127.0.0.1:6379';
const PREFIX = `test:stage-node:${process.pid}:${Date.now()}:`;
const MAX_TOKENS = 10;
const PROMPTS = prompts(2, 7);

let tmp: string;
let models: Models;
let redis: Redis;
let queue: Queue;
let whole: LayerShard;
let p4: LocalCluster | null = null;
let p2: LocalCluster | null = null;

async function arTokens(prompt: number[], sampling: JobSpec['sampling'], maxTokens = MAX_TOKENS) {
  const res = await generateAR(whole, {
    requestId: `ar-${Math.random()}`,
    prompt,
    maxTokens,
    sampling,
  });
  return res.tokens;
}

/**
 * A prompt the model continues for `n` tokens with these sampling settings (no end of sequence
 * on the way), for tests that must act while a request is still running.
 */
async function longPrompt(sampling: JobSpec['sampling'], n = 400): Promise<number[]> {
  for (const p of prompts(16, 11)) {
    if ((await arTokens(p, sampling, n)).length === n) return p;
  }
  throw new Error(`no test prompt runs for ${n} tokens`);
}

/** Enqueues a 400-token request on a prompt that runs that long; resolves at its first token. */
/**
 * Two stage processes of the tiny pair under their own key prefix (so other pipelines in this
 * file take none of their jobs), with `env` beside the defaults every cluster here has.
 */
function startPairWithPrefix(
  pipelineId: string,
  redisPrefix: string,
  env: Record<string, string>,
  readyTimeoutMs?: number,
): Promise<LocalCluster> {
  return LocalCluster.start({
    pipelineId,
    stages: 2,
    checkpointDir: models.target,
    draftCheckpointDir: models.draft,
    redisUrl: REDIS_URL,
    redisPrefix,
    env: { MODEL_NAME, HEARTBEAT_MS: '250', ...env },
    ...(readyTimeoutMs ? { readyTimeoutMs } : {}),
  });
}

async function startLong(spec: Pick<JobSpec, 'method' | 'sampling' | 'attempts'>) {
  const prompt = await longPrompt(spec.sampling);
  const job = await enqueue(queue, PREFIX, { ...spec, prompt, maxTokens: 400 });
  await waitEvents(redis, job.eventsKey, (ev) => ev.some((e) => e.type === 'token'), 60_000);
  return { prompt, job };
}

function startCluster(pipelineId: string, stages: number, draft: string): Promise<LocalCluster> {
  return LocalCluster.start({
    pipelineId,
    stages,
    checkpointDir: models.target,
    draftCheckpointDir: draft,
    redisUrl: REDIS_URL,
    redisPrefix: PREFIX,
    env: {
      MODEL_NAME,
      HEARTBEAT_MS: '250',
      // A killed stage's stream breaks at once; the TTL is the backstop, and long enough that
      // a stage starved of CPU on a busy test machine does not look gone.
      REGISTRY_TTL_MS: '2500',
      PIPELINE_CHECK_MS: '100',
      // The drain tests' 400-token requests take ~9 s here alone, several times that when the
      // two cores are shared with other suites: the grace must not be what ends them.
      SHUTDOWN_GRACE_MS: '90000',
    },
  });
}

beforeAll(async () => {
  if (!existsSync(STAGE_MAIN)) {
    throw new Error(
      `${STAGE_MAIN} is missing: run \`npm run build\` first (the stages run compiled code)`,
    );
  }
  tmp = await mkdtemp(path.join(os.tmpdir(), 'stage-node-'));
  models = await writeModels(tmp);
  redis = new Redis(REDIS_URL);
  queue = generationQueue(redis, PREFIX);
  whole = await openShard({ checkpointDir: models.target, intraOpThreads: 1 });
  p4 = await startCluster('p4', 4, models.draft);
});

afterAll(async () => {
  await p2?.stop();
  await p4?.stop();
  await whole?.close();
  await queue?.close();
  if (redis) {
    const keys = await redis.keys(`${PREFIX}*`);
    if (keys.length > 0) await redis.del(...keys);
    await redis.quit();
  }
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

function expectWellFormed(events: RequestEvent[], tokens: number): void {
  expect(events[0]).toMatchObject({ type: 'started', attempt: 1 });
  const tokenEvents = events.filter((e) => e.type === 'token');
  expect(tokenEvents.map((e) => e.index)).toEqual([...Array(tokens).keys()]);
  const steps = tokenEvents.map((e) => e.timestep);
  expect([...steps].sort((a, b) => a - b)).toEqual(steps);
  const done = events[events.length - 1];
  expect(done).toMatchObject({ type: 'done', usage: { completionTokens: tokens } });
}

describe('a pipeline of 4 stage processes', () => {
  it('registers every stage and reports health', async () => {
    for (let s = 0; s < 4; s++) {
      const h = await p4!.health(s);
      expect(h?.status).toBe(200);
      expect(h?.body).toMatchObject({
        ready: true,
        stageIndex: s,
        stageCount: 4,
        pipelineId: 'p4',
      });
    }
    const layers = await Promise.all([0, 1, 2, 3].map(async (s) => (await p4!.health(s))!.body));
    expect(layers.map((b) => [b.layerStart, b.layerEnd])).toEqual([
      [0, 4],
      [4, 8],
      [8, 12],
      [12, 16],
    ]);
  });

  it.each([
    ['greedy', GREEDY],
    ['seeded sampling', SAMPLED],
  ])('PP, STPP and PipeDec equal AR (%s)', async (_name, sampling) => {
    for (const prompt of PROMPTS) {
      const expected = await arTokens(prompt, sampling);
      const jobs = [];
      for (const method of ['pp', 'stpp', 'pipedec'] as const) {
        jobs.push({
          method,
          job: await enqueue(queue, PREFIX, { prompt, method, sampling, maxTokens: MAX_TOKENS }),
        });
      }
      for (const { method, job } of jobs) {
        const events = await waitEvents(redis, job.eventsKey, ended, 60_000);
        expect({ method, tokens: outputTokens(events) }).toEqual({ method, tokens: expected });
        expectWellFormed(events, expected.length);
      }
    }
  });

  it('shares the queue with a second pipeline', async () => {
    // A 2-stage pipeline whose draft is the target itself: every guess right, deep trees.
    p2 = await startCluster('p2', 2, models.target);
    const specs = PROMPTS.flatMap((prompt) =>
      (['pipedec', 'stpp', 'pipedec'] as const).map((method) => ({ prompt, method })),
    );
    const jobs = await Promise.all(
      specs.map((s) => enqueue(queue, PREFIX, { ...s, sampling: GREEDY, maxTokens: MAX_TOKENS })),
    );
    const served = new Set<string>();
    for (const [i, job] of jobs.entries()) {
      const events = await waitEvents(redis, job.eventsKey, ended, 60_000);
      expect(outputTokens(events)).toEqual(await arTokens(specs[i].prompt, GREEDY));
      const started = events[0];
      if (started.type === 'started') served.add(started.pipelineId);
    }
    expect([...served].sort()).toEqual(['p2', 'p4']);
    await p2.stop();
    p2 = null;
  });

  it('refuses fuzzed frames at a middle stage naming what is wrong, and keeps serving', async () => {
    const { job } = await startLong({ method: 'pipedec', sampling: GREEDY });
    // Frames reach a stage on its frame socket (FRAME_TRANSPORT=tcp, the default), and on its
    // gRPC Packets stream (FRAME_TRANSPORT=grpc, and the measurements): both are fuzzed.
    const entry = parseStageRegistration(await redis.get(registryKey(PREFIX, 'p4', 2)));
    expect(entry?.framesAddress).toMatch(/^127\.0\.0\.1:\d+$/);
    const breaks: Error[] = [];
    for (const transport of ['socket', 'grpc'] as const) {
      const acks: { requestId: string; seq: number; error: string }[] = [];
      let want = 0;
      let acked: (() => void) | null = null;
      const onAck = (ack: { requestId: string; seq: number; error: string }) => {
        acks.push(ack);
        if (acks.length >= want) acked?.();
      };
      let write: (frame: Buffer) => void;
      let close: () => void;
      if (transport === 'socket') {
        const link = new SocketLink(entry!.framesAddress!, 'Packets', {
          refused: onAck,
          broken: (e) => breaks.push(e), // a malformed frame must not cost the link
        });
        write = (f) => link.write(f);
        close = () => link.close();
      } else {
        const client = dialStage(p4!.grpcAddress(2));
        const call = client.Packets();
        call.on('error', () => undefined); // cancelled by client.close() at the end
        call.on('data', onAck);
        write = (f) => call.write(f);
        close = () => {
          call.end();
          client.close();
        };
      }
      const sendAll = async (frames: Buffer[]) => {
        want = acks.length + frames.length;
        const all = new Promise<void>((resolve) => (acked = resolve));
        for (const f of frames) write(f);
        await all;
      };
      // A well-formed packet of an unrelated request, the template for what follows.
      const frame = encodePackets(
        [
          {
            packet: {
              requestId: 'fuzz-request',
              epoch: 0,
              seq: 1,
              nodeIds: Int32Array.of(1, 2),
              parentIds: Int32Array.of(-1, 1),
              positions: Int32Array.of(0, 1),
              hidden: new Float32Array(2 * 32),
              sampling: GREEDY,
            },
            decisionCount: 0,
            trace: { computeMs: [], rows: [], codecMs: 0 },
          },
        ],
        'FP32',
      );
      // First, while it runs: a frame naming the running request, cut short, refused naming it.
      const named = encodePackets(
        [
          {
            packet: { ...decodePackets(frame)[0].packet, requestId: job.requestId },
            decisionCount: 0,
            trace: { computeMs: [], rows: [], codecMs: 0 },
          },
        ],
        'FP32',
      );
      const cut = Buffer.from(named.subarray(0, named.byteLength - 8));
      cut.writeUInt32LE(cut.byteLength, 8);
      await sendAll([cut]);
      expect(acks[acks.length - 1]).toMatchObject({ requestId: job.requestId, seq: 1 });
      expect(acks[acks.length - 1].error).toMatch(
        /^FRAME_TRUNCATED: packet frame \(request .*#1\): /,
      );
      // TODO(wire): the head should fail this request from stage 2's failure report; not yet
      // observed in this test, so only the refusal is checked here.
      let seed = 7;
      const rand = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff);
      // Then corrupted copies of it and noise, refused one by one.
      const noise: Buffer[] = [];
      for (let i = 0; i < 40; i++) {
        const b = Buffer.from(frame.subarray(0, 1 + (rand() % (frame.byteLength - 1))));
        b[rand() % Math.min(b.byteLength, 64)] ^= 1 + (rand() % 255);
        noise.push(b);
        noise.push(Buffer.from(Array.from({ length: rand() % 300 }, () => rand() & 0xff)));
      }
      const foreignVersion = Buffer.from(frame);
      foreignVersion[4] = 2;
      await sendAll([...noise, foreignVersion]);
      expect(acks).toHaveLength(noise.length + 2);
      for (const a of acks) expect(a.error).toMatch(/^FRAME_(TRUNCATED|FOREIGN|VERSION|INVALID): /);
      expect(acks[acks.length - 1].error).toMatch(/frame version 2, this stage reads 1/);

      close();
    }
    expect(breaks).toEqual([]);

    // The stage keeps serving: the next request is exact.
    const prompt = PROMPTS[0];
    const next = await enqueue(queue, PREFIX, {
      prompt,
      method: 'pipedec',
      sampling: GREEDY,
      maxTokens: MAX_TOKENS,
    });
    const nextEvents = await waitEvents(redis, next.eventsKey, ended, 60_000);
    expect(outputTokens(nextEvents)).toEqual(await arTokens(prompt, GREEDY));
  });

  it('stops a request cancelled as the API cancels it, with finish reason "cancelled"', async () => {
    const { job } = await startLong({ method: 'pipedec', sampling: GREEDY });
    // The flag, and its id on the cancel channel (the head aborts on the message at once).
    await redis
      .multi()
      .set(job.cancelKey, '1', 'EX', 60)
      .publish(cancelChannel(PREFIX), job.requestId)
      .exec();
    const events = await waitEvents(redis, job.eventsKey, ended, 5_000);
    const done = events[events.length - 1];
    expect(done).toMatchObject({ type: 'done', finishReason: 'cancelled' });
    if (done.type === 'done') expect(done.usage.completionTokens).toBeLessThan(400);
  });

  it('fails a request cleanly within 5 s when a middle stage dies, and recovers when it restarts', async () => {
    const { prompt, job } = await startLong({ method: 'pipedec', sampling: GREEDY });
    const survivors = [0, 1, 3].map((s) => p4!.pid(s));
    const killedAt = Date.now();
    await p4!.kill(2, 'SIGKILL');
    const events = await waitEvents(redis, job.eventsKey, ended, 5_000);
    const error = events[events.length - 1];
    expect(error).toMatchObject({ type: 'error', code: 'PIPELINE_BROKEN', retryable: false });
    expect(error.at - killedAt).toBeLessThan(5_000);
    // Not hung: the queue has failed the job.
    const state = await waitState(job.requestId, 'failed', 5_000);
    expect(state).toBe('failed');
    // While the stage is away the head takes no jobs: health says why.
    const h = await p4!.health(0);
    expect(h?.status).toBe(503);
    expect(JSON.stringify(h?.body.problems)).toContain('stage 2');

    // A job queued now is served once the stage is back, on its first attempt: the head takes
    // it only after every stage links to the new process, so no packet goes to the dead one.
    const queued = await enqueue(queue, PREFIX, {
      prompt,
      method: 'pipedec',
      sampling: GREEDY,
      maxTokens: MAX_TOKENS,
      attempts: 1,
    });
    await p4!.restart(2);
    const after = await waitEvents(redis, queued.eventsKey, ended, 60_000);
    expect(after.filter((e) => e.type === 'error')).toEqual([]);
    expect(outputTokens(after)).toEqual(await arTokens(prompt, GREEDY));
    // Only the dead stage was replaced: the others served the job in their original processes.
    expect(survivors.every((pid) => typeof pid === 'number')).toBe(true);
    expect([0, 1, 3].map((s) => p4!.pid(s))).toEqual(survivors);
  });

  it('retries an in-flight request whose attempts allow it', async () => {
    const { prompt, job } = await startLong({ method: 'stpp', sampling: SAMPLED, attempts: 2 });
    await p4!.kill(1, 'SIGKILL');
    const failed = await waitEvents(
      redis,
      job.eventsKey,
      (ev) => ev.some((e) => e.type === 'error'),
      5_000,
    );
    expect(failed[failed.length - 1]).toMatchObject({ type: 'error', retryable: true });
    await p4!.restart(1);
    const events = await waitEvents(redis, job.eventsKey, ended, 120_000);
    expect(events.filter((e) => e.type === 'started').map((e) => e.attempt)).toEqual([1, 2]);
    expect(outputTokens(events)).toEqual(await arTokens(prompt, SAMPLED, 400));
  });

  it('drains a middle stage on SIGTERM: the request in flight finishes, no new job starts', async () => {
    // Still running when the stage gets SIGTERM.
    const { prompt, job } = await startLong({ method: 'pipedec', sampling: SAMPLED });
    const exited = p4!.kill(2, 'SIGTERM');
    const next = await enqueue(queue, PREFIX, {
      prompt: PROMPTS[0],
      method: 'pp',
      sampling: GREEDY,
      maxTokens: MAX_TOKENS,
    });
    try {
      const events = await waitEvents(redis, job.eventsKey, ended, 90_000);
      expect(events[events.length - 1].type).toBe('done');
      expect(outputTokens(events)).toEqual(await arTokens(prompt, SAMPLED, 400));
      expect(await exited).toBe(0);
      expect(await redis.exists(`${PREFIX}stage:p4:2`)).toBe(0);
      // The head waits for the pipeline to be whole before it takes the next job.
      expect(await redis.exists(next.eventsKey)).toBe(0);
      expect((await p4!.health(0))?.status).toBe(503);
    } finally {
      // Whatever failed above, the tests after this one get a whole pipeline back.
      await exited;
      await p4!.restart(2);
    }
    const after = await waitEvents(redis, next.eventsKey, ended, 60_000);
    expect(outputTokens(after)).toEqual(await arTokens(PROMPTS[0], GREEDY));
  });

  it('drains on SIGTERM: not ready at once, finishes the request in flight, deregisters', async () => {
    const { prompt, job } = await startLong({ method: 'pipedec', sampling: GREEDY });
    const exited = p4!.kill(0, 'SIGTERM');
    let h = await p4!.health(0);
    for (let i = 0; i < 20 && h?.status === 200; i++) h = await p4!.health(0);
    expect(h?.status).toBe(503);
    const events = await waitEvents(redis, job.eventsKey, ended, 90_000);
    expect(events[events.length - 1].type).toBe('done');
    expect(outputTokens(events)).toEqual(await arTokens(prompt, GREEDY, 400));
    expect(await exited).toBe(0);
    expect(await redis.exists(`${PREFIX}stage:p4:0`)).toBe(0);
  });
});

describe('the demo pair on 4 stage processes', () => {
  const root = fileURLToPath(new URL('../../../', import.meta.url));
  const target = path.join(root, 'models/demo-target');
  const draft = path.join(root, 'models/demo-draft');
  let demo: LocalCluster | null = null;
  let demoWhole: LayerShard | null = null;

  beforeAll(async () => {
    demo = await LocalCluster.start({
      pipelineId: 'demo',
      stages: 4,
      checkpointDir: target,
      draftCheckpointDir: draft,
      redisUrl: REDIS_URL,
      redisPrefix: PREFIX,
      // Several jobs at once, so the stages compute requests together (batching, #16).
      env: {
        MODEL_NAME: 'pipedec-demo',
        HEARTBEAT_MS: '250',
        REGISTRY_TTL_MS: '2500',
        QUEUE_CONCURRENCY: '6',
        STAGE_BATCH_REQUESTS: '4',
        // Every runnable request in one call (up to 4), not one group per stage.
        STAGE_LANES: '1',
        // Every request speculates however many run, so STPP and PipeDec are batched here.
        SPECULATE_MAX_IN_FLIGHT: '6',
      },
    });
    demoWhole = await openShard({ checkpointDir: target, intraOpThreads: 1 });
  });

  afterAll(async () => {
    await demo?.stop();
    await demoWhole?.close();
  });

  it.each([
    ['greedy', GREEDY],
    ['seeded sampling', SAMPLED],
  ])('PP, STPP and PipeDec equal AR (%s)', async (_name, sampling) => {
    const tok = await loadTokenizer(target);
    const prompt = tok.encode('The pipeline splits the model across several hosts, and');
    const ar = await generateAR(demoWhole!, {
      requestId: `ar-demo-${_name}`,
      prompt,
      maxTokens: 16,
      sampling,
    });
    const jobs = [];
    for (const method of ['pp', 'stpp', 'pipedec'] as const) {
      jobs.push({
        method,
        job: await enqueue(queue, PREFIX, {
          prompt,
          method,
          sampling,
          maxTokens: 16,
          model: 'pipedec-demo',
        }),
      });
    }
    for (const { method, job } of jobs) {
      const events = await waitEvents(redis, job.eventsKey, ended, 60_000);
      expect({ method, tokens: outputTokens(events) }).toEqual({ method, tokens: ar.tokens });
      // The streamed text deltas add up to the decoded output.
      const text = events.map((e) => (e.type === 'token' ? e.text : '')).join('');
      expect(text).toBe(tok.decode(ar.tokens, { skipSpecialTokens: true }));
    }
  });
  it('computes concurrent requests together at every stage, each equal to AR alone', async () => {
    const tok = await loadTokenizer(target);
    const texts = [
      'In the beginning was the pipeline, and',
      'To be or not to be, that is',
      'function add(a, b) { return',
    ];
    const cases = texts.flatMap((text, i) =>
      (['pp', 'stpp', 'pipedec'] as const).map((method) => ({
        method,
        prompt: tok.encode(text),
        sampling: i === 1 ? SAMPLED : GREEDY,
      })),
    );
    const before = await Promise.all([0, 1, 2, 3].map((s) => demo!.health(s)));
    const jobs = await Promise.all(
      cases.map((c) => enqueue(queue, PREFIX, { ...c, maxTokens: 24, model: 'pipedec-demo' })),
    );
    for (const [k, c] of cases.entries()) {
      const ar = await generateAR(demoWhole!, {
        requestId: `ar-batch-${k}`,
        prompt: c.prompt,
        maxTokens: 24,
        sampling: c.sampling,
      });
      const events = await waitEvents(redis, jobs[k].eventsKey, ended, 120_000);
      expect({ k, method: c.method, tokens: outputTokens(events) }).toEqual({
        k,
        method: c.method,
        tokens: ar.tokens,
      });
    }
    // Every stage computed some calls with several requests' packets.
    const after = await Promise.all([0, 1, 2, 3].map((s) => demo!.health(s)));
    after.forEach((h, s) => {
      const b = h!.body.batching as { calls: number; packets: number; maxRequests: number };
      const b0 = before[s]!.body.batching as { calls: number; packets: number };
      expect({ stage: s, shared: b.packets - b0.packets > b.calls - b0.calls }).toEqual({
        stage: s,
        shared: true,
      });
      expect(b.maxRequests).toBeGreaterThan(1);
    });
    // Once every request has ended no stage holds a sequence: a request released while the
    // stage computed another one's packet used to keep its KV rows (bench:batching ran stage
    // 0 out of KV memory with 42 sequences held and 16 requests in flight).
    for (const s of [0, 1, 2, 3]) {
      await waitFor(async () => {
        const kv = (await demo!.health(s))?.body.kv as { sequences: number } | undefined;
        return kv?.sequences === 0;
      });
    }
  });

  it('distribution-mode requests computed together with others give their solo tokens at the same width', async () => {
    // Recursive rejection sampling is deterministic for a seed, method and width: batching
    // beside other requests (which may narrow the width under load, reported in the started
    // event) must not change a request's tokens.
    const tok = await loadTokenizer(target);
    const sampled = { temperature: 1, topP: 1, seed: 31, acceptance: 'distribution' as const };
    const cases = [
      { method: 'pipedec' as const, text: 'The stages of the pipeline', sampling: sampled },
      { method: 'stpp' as const, text: 'A long time ago, in a', sampling: sampled },
      { method: 'pipedec' as const, text: 'Once upon a time', sampling: { ...sampled, seed: 5 } },
      { method: 'pp' as const, text: 'Filler beside them,', sampling: GREEDY },
      { method: 'pipedec' as const, text: 'Another filler that', sampling: GREEDY },
    ];
    const run = async (c: (typeof cases)[number], width: number) =>
      enqueue(queue, PREFIX, {
        method: c.method,
        prompt: tok.encode(c.text),
        sampling: c.sampling,
        maxTokens: 20,
        width,
        model: 'pipedec-demo',
      });
    const batched = await Promise.all(cases.map((c) => run(c, 8)));
    for (const [k, c] of cases.entries()) {
      if (c.sampling === GREEDY) continue;
      const events = await waitEvents(redis, batched[k].eventsKey, ended, 120_000);
      const started = events.find((e) => e.type === 'started');
      const width = started?.type === 'started' ? started.decoding?.width : undefined;
      expect(width).toBeGreaterThanOrEqual(1);
      expect(started?.type === 'started' && started.decoding?.acceptance).toBe('distribution');
      // Alone now (nothing else in flight by the time it starts: the batch has drained).
      for (const j of batched) await waitEvents(redis, j.eventsKey, ended, 120_000);
      const solo = await run(c, width!);
      const soloEvents = await waitEvents(redis, solo.eventsKey, ended, 120_000);
      expect(events.some((e) => e.type === 'error')).toBe(false);
      expect({ k, tokens: outputTokens(soloEvents) }).toEqual({ k, tokens: outputTokens(events) });
      expect(outputTokens(events).length).toBeGreaterThan(0);
    }
  });

  it('keeps a request failing in a stage, or cancelled, from disturbing the others in its batch', async () => {
    const tok = await loadTokenizer(target);
    const good = ['Stages pass the hidden states along, and', 'Once upon a time there was'].map(
      (text) => tok.encode(text),
    );
    const others = await Promise.all(
      good.map((prompt, i) =>
        enqueue(queue, PREFIX, {
          prompt,
          method: i === 0 ? 'pipedec' : 'pp',
          sampling: GREEDY,
          maxTokens: 48,
          model: 'pipedec-demo',
        }),
      ),
    );
    // Stage 0 refuses this one's prompt (a token id past the vocabulary) in the batch it
    // computes with the others' rows; another is cancelled after its first token.
    const failing = await enqueue(queue, PREFIX, {
      prompt: [...good[0], 1_000_000],
      method: 'pp',
      sampling: GREEDY,
      maxTokens: 48,
      model: 'pipedec-demo',
    });
    const cancelled = await enqueue(queue, PREFIX, {
      prompt: good[1],
      method: 'pipedec',
      sampling: GREEDY,
      maxTokens: 400,
      model: 'pipedec-demo',
    });
    await waitEvents(
      redis,
      cancelled.eventsKey,
      (ev) => ev.some((e) => e.type === 'token'),
      60_000,
    );
    await redis
      .multi()
      .set(cancelled.cancelKey, '1', 'EX', 60)
      .publish(cancelChannel(PREFIX), cancelled.requestId)
      .exec();
    const failed = await waitEvents(redis, failing.eventsKey, ended, 60_000);
    expect(failed.at(-1)).toMatchObject({ type: 'error', code: 'STAGE_FAILED' });
    const stopped = await waitEvents(redis, cancelled.eventsKey, ended, 60_000);
    expect(stopped.at(-1)).toMatchObject({ type: 'done', finishReason: 'cancelled' });
    for (const [k, prompt] of good.entries()) {
      const events = await waitEvents(redis, others[k].eventsKey, ended, 120_000);
      const ar = await generateAR(demoWhole!, {
        requestId: `ar-isolated-${k}`,
        prompt,
        maxTokens: 48,
        sampling: GREEDY,
      });
      expect({ k, tokens: outputTokens(events) }).toEqual({ k, tokens: ar.tokens });
    }
  });
});

describe('a KV budget on 2 stage processes', () => {
  // Its own key prefix, so the 4-stage pipeline above takes none of these jobs.
  const prefix = `${PREFIX}kv:`;
  const MAX_POSITIONS = 512; // cluster-helpers TINY
  // 16 layers on 2 stages: 8 layers x K,V x 2 kv heads x head dim 8 x 4 bytes a row.
  const BYTES_PER_ROW = 8 * 2 * 2 * 8 * 4;
  const prompt = PROMPTS[0];
  const rowsAt = (maxTokens: number, width: number) =>
    kvRowsFor(prompt.length, maxTokens, MAX_POSITIONS, kvTreeRows(width, 2, 4));
  // One 60-token PipeDec request of width 2 fits, two do not.
  const capacitySlots = Math.floor(1.5 * kvSlotsFor(rowsAt(60, 2)));
  let kv: LocalCluster | null = null;
  let kvQueue: Queue | null = null;

  beforeAll(async () => {
    kv = await startPairWithPrefix('kv', prefix, {
      REGISTRY_TTL_MS: '2500',
      QUEUE_CONCURRENCY: '3',
      MAX_KV_BYTES: String(capacitySlots * BYTES_PER_ROW),
    });
    kvQueue = generationQueue(redis, prefix);
  });

  afterAll(async () => {
    await kv?.stop();
    await kvQueue?.close();
  });

  it('announces each stage budget in the registry', async () => {
    for (const s of [0, 1]) {
      const entry = parseStageRegistration(await redis.get(registryKey(prefix, 'kv', s)));
      expect(entry?.kv).toEqual({
        limitBytes: capacitySlots * BYTES_PER_ROW,
        bytesPerRow: BYTES_PER_ROW,
        maxPositions: MAX_POSITIONS,
        treeDepth: 4,
      });
      expect((await kv!.health(s))?.body.kv).toEqual({
        usedBytes: 0,
        limitBytes: capacitySlots * BYTES_PER_ROW,
        sequences: 0,
      });
    }
  });

  it('holds a job that does not fit beside the running one until it ends, then runs it exactly', async () => {
    const spec = { prompt, method: 'pipedec', sampling: GREEDY, maxTokens: 60, width: 2 } as const;
    const first = await enqueue(kvQueue!, prefix, spec);
    const second = await enqueue(kvQueue!, prefix, spec);
    const a = await waitEvents(redis, first.eventsKey, ended, 60_000);
    const b = await waitEvents(redis, second.eventsKey, ended, 60_000);
    const expected = await arTokens(prompt, GREEDY, 60);
    expect(outputTokens(a)).toEqual(expected);
    expect(outputTokens(b)).toEqual(expected);
    // The head took both (QUEUE_CONCURRENCY 3); the second started once the first was done.
    const [doneA] = a.filter((e) => e.type === 'done');
    const [startedB] = b.filter((e) => e.type === 'started');
    expect(startedB.at).toBeGreaterThanOrEqual(doneA.at);
  });

  it('narrows a tree that could never fit, and refuses a request that never fits at all', async () => {
    // The longest output that fits with width 1 (and not with width 4).
    let maxTokens = 1;
    while (kvSlotsFor(rowsAt(maxTokens + 1, 1)) <= capacitySlots) maxTokens++;
    expect(kvSlotsFor(rowsAt(maxTokens, 4))).toBeGreaterThan(capacitySlots);
    const narrow = await enqueue(kvQueue!, prefix, {
      prompt,
      method: 'pipedec',
      sampling: GREEDY,
      maxTokens,
      width: 4,
    });
    const tooLong = await enqueue(kvQueue!, prefix, {
      prompt,
      method: 'pp',
      sampling: GREEDY,
      maxTokens: maxTokens + 1,
    });
    const n = await waitEvents(redis, narrow.eventsKey, ended, 120_000);
    expect(n[0]).toMatchObject({ type: 'started', decoding: { narrowedFrom: 4 } });
    // Every stage held its worst case: no KV_LIMIT on the way, the tokens exact.
    expect(outputTokens(n)).toEqual(await arTokens(prompt, GREEDY, maxTokens));
    const t = await waitEvents(redis, tooLong.eventsKey, ended, 60_000);
    expect(t).toEqual([
      expect.objectContaining({ type: 'error', code: 'KV_BUDGET', retryable: false }),
    ]);
  });

  it('puts a job waiting for KV memory back on the queue when the head drains (SIGTERM)', async () => {
    const spec = { prompt, method: 'pipedec', sampling: GREEDY, maxTokens: 60, width: 2 } as const;
    const first = await enqueue(kvQueue!, prefix, spec);
    await waitEvents(redis, first.eventsKey, (ev) => ev.some((e) => e.type === 'token'), 60_000);
    const second = await enqueue(kvQueue!, prefix, spec);
    // The head takes it (QUEUE_CONCURRENCY 3) and holds it: active, no events yet.
    await waitFor(async () => (await kvQueue!.getJobState(second.requestId)) === 'active');
    const exited = kv!.kill(0, 'SIGTERM');
    const a = await waitEvents(redis, first.eventsKey, ended, 60_000);
    expect(outputTokens(a)).toEqual(await arTokens(prompt, GREEDY, 60));
    expect(await exited).toBe(0);
    // Untouched, waiting for another pipeline: no attempt spent, nothing on its stream.
    const state = await kvQueue!.getJobState(second.requestId);
    expect(['delayed', 'waiting']).toContain(state);
    expect((await kvQueue!.getJob(second.requestId))?.attemptsMade).toBe(0);
    expect(await redis.xlen(second.eventsKey)).toBe(0);
  });
});

describe('speculation turned off by load on 2 stage processes', () => {
  // Its own key prefix, so the 4-stage pipeline above takes none of these jobs.
  const prefix = `${PREFIX}busy:`;
  let busy: LocalCluster | null = null;
  let busyQueue: Queue | null = null;

  beforeAll(async () => {
    // Two jobs at once; a request starting beside another one does not speculate.
    busy = await startPairWithPrefix('busy', prefix, {
      QUEUE_CONCURRENCY: '2',
      SPECULATE_MAX_IN_FLIGHT: '1',
    });
    busyQueue = generationQueue(redis, prefix);
  });

  afterAll(async () => {
    await busy?.stop();
    await busyQueue?.close();
  });

  it('decodes a PipeDec or STPP request starting beside another as PP, with the same tokens', async () => {
    const [first, second] = PROMPTS;
    const running = await enqueue(busyQueue!, prefix, {
      prompt: first,
      method: 'pipedec',
      sampling: GREEDY,
      maxTokens: 400,
      width: 4,
    });
    const a = await waitEvents(
      redis,
      running.eventsKey,
      (ev) => ev.some((e) => e.type === 'token'),
      60_000,
    );
    // Alone when it started: its own method and width.
    // Refills fill this pipeline by default: min(stages, 7) layers, 2 here.
    expect(a[0]).toMatchObject({
      type: 'started',
      decoding: { method: 'pipedec', width: 4, refillLayers: 2 },
    });
    expect(a[0]).not.toHaveProperty('decoding.fellBackFrom');
    for (const method of ['pipedec', 'stpp'] as const) {
      const beside = await enqueue(busyQueue!, prefix, {
        prompt: second,
        method,
        sampling: GREEDY,
        maxTokens: 24,
        width: 4,
      });
      const b = await waitEvents(redis, beside.eventsKey, ended, 60_000);
      expect(b[0]).toMatchObject({
        type: 'started',
        decoding: { method: 'pp', width: 1, depth: 0, fellBackFrom: method, narrowedFrom: 4 },
      });
      expect(b[0]).not.toHaveProperty('decoding.refillLayers');
      expect(outputTokens(b)).toEqual(await arTokens(second, GREEDY, 24));
    }
    // The first was still running when both others started, and went on as it was.
    const all = await waitEvents(redis, running.eventsKey, ended, 120_000);
    expect(all.some((e) => e.type === 'error')).toBe(false);
    expect(outputTokens(all)).toEqual(await arTokens(first, GREEDY, 400));
  });
});

describe('a pipeline that warms up before its first job', () => {
  // Its own key prefix, so the 4-stage pipeline above takes none of these jobs.
  const prefix = `${PREFIX}warm:`;
  // Four rounds of auto's 5 candidates x (greedy, sampled) at 64 tokens: the second half gives
  // auto two measurements of each candidate in each class.
  const WARMUP_TOKENS = 4 * 10 * 64;
  let warm: LocalCluster | null = null;
  let warmQueue: Queue | null = null;

  afterAll(async () => {
    await warm?.stop();
    await warmQueue?.close();
  });

  it('runs every method through every stage first; a job waits for it, then auto already knows the fastest', async () => {
    warmQueue = generationQueue(redis, prefix);
    const prompt = PROMPTS[1];
    // Queued before the pipeline exists: it must not start before the warm-up has ended.
    const job = await enqueue(warmQueue, prefix, {
      prompt,
      method: 'auto',
      width: 0, // as the API sends auto without tree_width: auto picks the width too
      sampling: GREEDY,
      maxTokens: MAX_TOKENS,
    });
    warm = await startPairWithPrefix(
      'warm',
      prefix,
      {
        WARMUP_TOKENS: String(WARMUP_TOKENS),
        // The whole budget even on a loaded test machine (the default 20 s cut it at 1,216).
        WARMUP_MAX_MS: '300000',
      },
      300_000,
    );
    const events = await waitEvents(redis, job.eventsKey, ended, 60_000);
    const head = (await warm.health(0))!.body;
    expect(head.warmUp).toMatchObject({
      state: 'done',
      tokens: WARMUP_TOKENS,
      targetTokens: WARMUP_TOKENS,
      requests: 40,
      reason: null,
    });
    const warmUp = head.warmUp as { endedAt: number };
    const started = events[0];
    expect(started.type).toBe('started');
    expect(started.at).toBeGreaterThanOrEqual(warmUp.endedAt);
    // The first auto request is an informed choice, and as exact as any.
    expect(started).toMatchObject({ decoding: { reason: 'fastest' } });
    expect(outputTokens(events)).toEqual(await arTokens(prompt, GREEDY));
    // Both stages computed the warm-up's packets, and hold nothing of it.
    for (const s of [0, 1]) {
      const body = (await warm.health(s))!.body as {
        batching: { packets: number };
        kv: { sequences: number };
      };
      expect(body.batching.packets).toBeGreaterThan(WARMUP_TOKENS / 4);
      expect(body.kv.sequences).toBe(0);
    }
  });
});

/** Polls until `ok` holds (every 25 ms), failing after `timeoutMs`. */
async function waitFor(ok: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`not true after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function waitState(jobId: string, state: string, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let s = 'unknown';
  while (Date.now() < deadline) {
    s = await queue.getJobState(jobId);
    if (s === state) return s;
    await new Promise((r) => setTimeout(r, 50));
  }
  return s;
}
