// ReadThroughCache with a stand-in for CacheInvalidation (only its generation is read).
import { type CacheInvalidation, ReadThroughCache } from './cache-invalidation.js';

function setup() {
  const invalidation = { generation: 1 as number | null };
  const cache = new ReadThroughCache<string>(invalidation as CacheInvalidation, 10_000);
  let reads = 0;
  const gates: ((v: string | null) => void)[] = [];
  const load = () => {
    reads++;
    return new Promise<string | null>((resolve) => gates.push(resolve));
  };
  return { invalidation, cache, load, reads: () => reads, gates };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('ReadThroughCache', () => {
  it('requests that miss together under one generation share one read, then hit', async () => {
    const { cache, load, reads, gates } = setup();
    const all = Promise.all([cache.get('k', load), cache.get('k', load), cache.get('k', load)]);
    await tick();
    expect(reads()).toBe(1);
    gates[0]('row');
    expect(await all).toEqual(['row', 'row', 'row']);
    expect(await cache.get('k', load)).toBe('row');
    expect(reads()).toBe(1);
  });

  it('a request after a change does not share a read that began before it', async () => {
    const { invalidation, cache, load, reads, gates } = setup();
    const before = cache.get('k', load);
    invalidation.generation = 2; // a change was heard while the first read ran
    const after = cache.get('k', load);
    await tick();
    expect(reads()).toBe(2);
    gates[0]('old');
    gates[1]('new');
    expect([await before, await after]).toEqual(['old', 'new']);
    // Only the read under the current generation is kept.
    expect(await cache.get('k', load)).toBe('new');
    expect(reads()).toBe(2);
  });

  it('a failed read is not shared with later requests', async () => {
    const { cache, reads } = setup();
    await expect(cache.get('k', () => Promise.reject(new Error('db down')))).rejects.toThrow(
      'db down',
    );
    expect(await cache.get('k', () => Promise.resolve('row'))).toBe('row');
    expect(reads()).toBe(0);
  });

  it('reads through, sharing nothing, while changes could be missed', async () => {
    const { invalidation, cache, load, reads, gates } = setup();
    invalidation.generation = null;
    const a = cache.get('k', load);
    const b = cache.get('k', load);
    await tick();
    expect(reads()).toBe(2);
    gates.forEach((g) => g('row'));
    await Promise.all([a, b]);
    const c = cache.get('k', load); // nothing was kept
    expect(reads()).toBe(3);
    gates[2]('row');
    expect(await c).toBe('row');
  });
});
