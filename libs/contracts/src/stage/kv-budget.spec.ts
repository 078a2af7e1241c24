import {
  kvBytesFor,
  kvRefusal,
  kvRowsCapacity,
  kvRowsFor,
  kvSlotsFor,
  kvTreeRows,
  type StageKv,
} from './kv-budget.js';

// The demo model on 4 stages: 4 layers x K,V x 2 kv heads x 32 x 4 bytes = 2 KiB a row.
const stage = (limitBytes: number | null, bytesPerRow = 2048): StageKv => ({
  limitBytes,
  bytesPerRow,
  maxPositions: 1024,
  treeDepth: 4,
});

describe('kvSlotsFor', () => {
  it('bounds the cache growth: 16 first, then a quarter or at least 64 more', () => {
    expect(kvSlotsFor(0)).toBe(0);
    expect(kvSlotsFor(1)).toBe(65);
    expect(kvSlotsFor(100)).toBe(164);
    expect(kvSlotsFor(1000)).toBe(1250);
  });
});

describe('kvRowsFor and kvTreeRows', () => {
  it('is the context capped by the window, plus the tree', () => {
    // The module's worked example: PipeDec width 2 on 4 stages, depth 4.
    expect(kvTreeRows(2, 4, 4)).toBe(2 * 9 + 9);
    expect(kvRowsFor(100, 200, 1024, kvTreeRows(2, 4, 4))).toBe(327);
    expect(kvBytesFor(327, stage(null))).toBe(kvSlotsFor(327) * 2048);
    // max_tokens past the window: the engine stops at the window (finish reason length).
    expect(kvRowsFor(100, 5000, 1024, 10)).toBe(1034);
    // Width 0 (auto picks it) counts as 1.
    expect(kvTreeRows(0, 4, 4)).toBe(kvTreeRows(1, 4, 4));
  });
});

describe('kvRowsCapacity', () => {
  it('is the largest request the smallest stage holds, its growth included', () => {
    expect(kvRowsCapacity([stage(null), stage(null)])).toBe(Infinity);
    const cap = kvRowsCapacity([stage(1250 * 2048), stage(null), stage(4000 * 2048)]);
    expect(cap).toBe(1000);
    expect(kvSlotsFor(cap) * 2048).toBeLessThanOrEqual(1250 * 2048);
    expect(kvSlotsFor(cap + 1) * 2048).toBeGreaterThan(1250 * 2048);
    // A budget below one first buffer holds nothing.
    expect(kvRowsCapacity([stage(10 * 2048)])).toBe(0);
  });
});

describe('kvRefusal', () => {
  it('passes what fits, names max_tokens when the output is too long, the prompt when it is', () => {
    expect(kvRefusal(100, 200, 1024, 27, 1000)).toBeNull();
    expect(kvRefusal(100, 900, 1024, 27, 1000)).toEqual({
      field: 'max_tokens',
      message:
        "max_tokens is 900; with a 100-token prompt a stage's KV memory holds at most 873 output tokens",
    });
    expect(kvRefusal(100, 873, 1024, 27, 1000)).toBeNull();
    expect(kvRefusal(980, 10, 1024, 27, 1000)).toMatchObject({ field: 'prompt' });
    expect(kvRefusal(980, 10, 1024, 27, 1000)?.message).toContain('at most 972 prompt tokens');
    // Unbounded stages refuse nothing.
    expect(kvRefusal(100_000, 100_000, 1024, 27, Infinity)).toBeNull();
  });
});
