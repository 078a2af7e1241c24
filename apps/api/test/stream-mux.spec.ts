// StreamMux against a real Redis: every follow of a replica shares one blocking XREAD, and each
// still gets exactly its own stream's entries after its own resume point.
import { deleteRedisPrefix, redisPrefix, testEnv, testRedis } from '@pipedec/testkit';
import type { Redis } from 'ioredis';
import { parseApiConfig } from '../src/config/api-config.js';
import { idBefore, StreamMux } from '../src/generation/stream-mux.js';
import { RedisConnections } from '../src/infra/redis.provider.js';
import { waitFor } from './test-api.js';

let prefix: string;
let redis: Redis;
let connections: RedisConnections;
let mux: StreamMux;

beforeEach(() => {
  prefix = redisPrefix();
  redis = testRedis();
  connections = new RedisConnections(
    parseApiConfig({ REDIS_URL: testEnv().TEST_REDIS_URL, REDIS_PREFIX: prefix }),
  );
  mux = new StreamMux(connections);
});
afterEach(async () => {
  await mux.onModuleDestroy();
  await connections.onModuleDestroy();
  await deleteRedisPrefix(redis, prefix);
  redis.disconnect();
});

const append = (stream: string, value: string) => redis.xadd(`${prefix}${stream}`, '*', 'v', value);

/** The values a follow reads until (and with) `last`. */
async function collect(
  stream: string,
  after: string,
  last: string,
  signal = new AbortController().signal,
): Promise<string[]> {
  const values: string[] = [];
  for await (const [, fields] of mux.read(`${prefix}${stream}`, after, signal)) {
    values.push(fields[1]);
    if (fields[1] === last) break;
  }
  return values;
}

/**
 * Resolves once Redis shows the mux's own connection blocked in an XREAD (CLIENT LIST: its
 * client address, cmd=xread, flag b); fails after 5 s.
 */
async function xreadBlocking(): Promise<void> {
  const conn = (mux as unknown as { conn?: Redis }).conn;
  await waitFor(async () => {
    const port = conn?.stream?.localPort;
    if (port === undefined) return undefined;
    const clients = (await redis.client('LIST')) as string;
    const mine = clients.split('\n').find((l) => new RegExp(`\\baddr=\\S+:${port}\\b`).test(l));
    return mine && /\bcmd=xread\b/.test(mine) && /\bflags=\S*b/.test(mine) ? true : undefined;
  }, 5_000);
}

describe('StreamMux', () => {
  it('gives each follow its own entries after its resume point, in order, once', async () => {
    await append('a', 'a1');
    const a2 = await append('a', 'a2');
    const fromStart = collect('a', '0', 'a5');
    const fromA2 = collect('a', a2!, 'a5');
    const other = collect('b', '0', 'b3');
    // Entries arrive while the follows block, interleaved across the streams.
    for (let i = 1; i <= 3; i++) {
      await xreadBlocking();
      await append('b', `b${i}`);
      if (i < 3) await append('a', `a${i + 2}`);
    }
    // A follow that starts while the others' read blocks is in the next read.
    const late = collect('a', '0', 'a5');
    await append('a', 'a5');
    expect(await fromStart).toEqual(['a1', 'a2', 'a3', 'a4', 'a5']);
    expect(await fromA2).toEqual(['a3', 'a4', 'a5']);
    expect(await other).toEqual(['b1', 'b2', 'b3']);
    expect(await late).toEqual(['a1', 'a2', 'a3', 'a4', 'a5']);
  });

  it('ends a follow when its signal aborts, and keeps serving the others', async () => {
    const abort = new AbortController();
    const stopped = collect('c', '0', 'never', abort.signal);
    const going = collect('d', '0', 'd2');
    await append('c', 'c1');
    await append('d', 'd1');
    abort.abort();
    expect((await stopped).length).toBeLessThanOrEqual(1);
    await append('d', 'd2');
    expect(await going).toEqual(['d1', 'd2']);
  });

  it('serves follows of one stream from different resume points as they come and go', async () => {
    await append('e', 'e1');
    const e2 = await append('e', 'e2');
    const older = collect('e', '0', 'e3');
    const newer = collect('e', e2!, 'e6');
    await append('e', 'e3');
    // The older follow leaves; the newer one stays.
    expect(await older).toEqual(['e1', 'e2', 'e3']);
    const e4 = await append('e', 'e4');
    // Another older follow joins while the newer one's read blocks, and a newer one that leaves.
    const again = collect('e', '0', 'e6');
    const brief = collect('e', e4!, 'e5');
    await append('e', 'e5');
    expect(await brief).toEqual(['e5']);
    await append('e', 'e6');
    expect(await newer).toEqual(['e3', 'e4', 'e5', 'e6']);
    expect(await again).toEqual(['e1', 'e2', 'e3', 'e4', 'e5', 'e6']);
    // Nothing is left behind to be read for (the map by stream is private; no other sign).
    expect((mux as unknown as { followers: Map<string, unknown> }).followers.size).toBe(0);
  });

  it('wakes the blocking read for a follow of another stream', async () => {
    const abort = new AbortController();
    const waiting = collect('g', '0', 'never', abort.signal);
    await xreadBlocking(); // the read of g alone blocks now
    const started = Date.now();
    const late = collect('h', '0', 'h1');
    await append('h', 'h1');
    expect(await late).toEqual(['h1']);
    // Not served only once that read gives up (after 1000 ms).
    expect(Date.now() - started).toBeLessThan(500);
    abort.abort();
    expect(await waiting).toEqual([]);
  });
});

describe('idBefore', () => {
  it('orders stream ids by ms, then seq', () => {
    expect(idBefore('0', '0-1')).toBe(true);
    expect(idBefore('0-1', '0')).toBe(false);
    expect(idBefore('5', '5-0')).toBe(false);
    expect(idBefore('1700000000000-9', '1700000000000-10')).toBe(true);
    expect(idBefore('1700000000000-10', '1700000000001-0')).toBe(true);
    expect(idBefore('1700000000001-0', '1700000000000-99')).toBe(false);
    expect(idBefore('1700000000000-3', '1700000000000-3')).toBe(false);
  });

  it('stays exact past 2^53, where a client-sent resume point may be', () => {
    expect(idBefore('9007199254740992-0', '9007199254740993-0')).toBe(true);
    expect(idBefore('0-9007199254740993', '0-9007199254740992')).toBe(false);
    expect(idBefore('1-0', '0-18446744073709551615')).toBe(false);
    expect(idBefore('0-18446744073709551614', '0-18446744073709551615')).toBe(true);
  });
});
