import fc from 'fast-check';
import {
  argmax,
  chooseToken,
  chooseTokenFromTop,
  gumbelAt,
  gumbelTopK,
  rowKeyOf,
  logSoftmax,
  logSumExp,
  type RowTop,
  topK,
  uniformAt,
} from '../src/index.js';

describe('seeded sampling', () => {
  it('draws a uniform number that depends only on (seed, position)', () => {
    const a = Array.from({ length: 2000 }, (_, p) => uniformAt(42, p));
    expect(a.every((u) => u >= 0 && u < 1)).toBe(true);
    expect(Array.from({ length: 2000 }, (_, p) => uniformAt(42, p))).toEqual(a);
    expect(uniformAt(43, 5)).not.toBe(uniformAt(42, 5));
    expect(uniformAt(2 ** 40 + 42, 5)).not.toBe(uniformAt(42, 5));
    const mean = a.reduce((s, u) => s + u, 0) / a.length;
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.03);
  });

  it('greedy is argmax with the lowest index winning a tie', () => {
    const l = Float32Array.from([0, 3, 1, 3]);
    expect(argmax(l, 0, 4)).toBe(1);
    expect(chooseToken(l, 0, 4, 9, { temperature: 0, topP: 1, seed: 1 })).toBe(1);
  });

  it('samples the softmax distribution, and top-p restricts it to the nucleus', () => {
    const logits = Float32Array.from([Math.log(0.5), Math.log(0.3), Math.log(0.2)]);
    const count = (topP: number) => {
      const c = [0, 0, 0];
      for (let p = 0; p < 6000; p++)
        c[chooseToken(logits, 0, 3, p, { temperature: 1, topP, seed: 7 })]++;
      return c.map((x) => x / 6000);
    };
    const full = count(1);
    expect(full[0]).toBeCloseTo(0.5, 1);
    expect(full[1]).toBeCloseTo(0.3, 1);
    expect(full[2]).toBeCloseTo(0.2, 1);
    const nucleus = count(0.8);
    expect(nucleus[2]).toBe(0);
    expect(nucleus[0]).toBeCloseTo(0.625, 1);
  });

  it('the same (seed, position) gives the same token from any row offset', () => {
    const rows = Float32Array.from([9, 9, 9, 0.1, 0.5, 0.2]);
    const p = { temperature: 0.7, topP: 0.95, seed: 3 };
    expect(chooseToken(rows, 3, 3, 11, p)).toBe(
      chooseToken(Float32Array.from([0.1, 0.5, 0.2]), 0, 3, 11, p),
    );
  });

  it('the draw couples two close distributions: the same noise picks the same token far more often than independent draws', () => {
    const vocab = 64;
    const target = Float32Array.from({ length: vocab }, (_, i) => Math.sin(i * 1.7) * 2);
    const draft = Float32Array.from(target, (x, i) => x + 0.3 * Math.cos(i * 2.3));
    const p = { temperature: 1, topP: 1, seed: 5 };
    let same = 0;
    let independent = 0;
    for (let pos = 0; pos < 4000; pos++) {
      const x = chooseToken(target, 0, vocab, pos, p);
      if (x === chooseToken(draft, 0, vocab, pos, p)) same++;
      if (x === chooseToken(draft, 0, vocab, pos, { ...p, seed: 6 })) independent++;
    }
    // Total variation between the two is about 0.1: a coupling agrees at least ~0.8 of the time.
    expect(same / 4000).toBeGreaterThan(0.8);
    expect(independent / 4000).toBeLessThan(0.3);
  });

  it('topK returns the best tokens, ties by lowest index', () => {
    const lp = logSoftmax(Float32Array.from([1, 5, 5, 2, 0]), 0, 5);
    expect(topK(lp, 3)).toEqual([1, 2, 3]);
    expect(topK(lp, 10)).toEqual([1, 2, 3, 0, 4]);
  });

  it('logSumExp of a row at a temperature is that of the row divided by it', () => {
    const row = Float32Array.from([9, 0.5, -2, 3, 1]);
    const direct = (t: number) =>
      Math.log(Array.from(row).reduce((a, x) => a + Math.exp(x / t), 0));
    for (const t of [1, 0.5, 2]) expect(logSumExp(row, 0, 5, t)).toBeCloseTo(direct(t), 5);
    expect(logSumExp(Float32Array.from([7, 1, 2, 3]), 1, 3, 0.5)).toBeCloseTo(
      Math.log(Math.exp(2) + Math.exp(4) + Math.exp(6)),
      5,
    );
  });
});

describe('scoring only the tokens whose noise can still win', () => {
  // The plain definitions: every token scored, then the best (ties by lowest id).
  const plainDraw = (logits: Float32Array, t: number, key: number): number => {
    const max = Math.max(...logits);
    let best = -1;
    let bestScore = -Infinity;
    logits.forEach((l, i) => {
      const score = (l - max) / t + gumbelAt(key, i);
      if (score > bestScore) [best, bestScore] = [i, score];
    });
    return best;
  };
  const plainTopK = (w: Float64Array, key: number, k: number): number[] =>
    [...w.keys()]
      .filter((i) => w[i] > 0)
      .map((i) => ({ i, score: Math.log(w[i]) + gumbelAt(key, i) }))
      .sort((a, b) => b.score - a.score || a.i - b.i)
      .slice(0, k)
      .map((s) => s.i);
  // Rows from flat to peaked, with repeated values (ties) and zero weights.
  const row = fc
    .tuple(
      fc.integer({ min: 1, max: 300 }),
      fc.constantFrom(0.1, 1, 5, 40),
      fc.integer({ min: 0, max: 2 ** 31 }),
    )
    .map(([vocab, spread, salt]) =>
      Float32Array.from({ length: vocab }, (_, i) => (((i * 7919 + salt) % 13) - 6) * spread),
    );

  it('the draw at top-p 1 is the plain draw over every token', () => {
    fc.assert(
      fc.property(
        row,
        fc.constantFrom(0.05, 0.7, 1, 1.5),
        fc.nat(),
        fc.nat(500),
        (logits, temperature, seed, position) => {
          const params = { temperature, topP: 1, seed };
          expect(chooseToken(logits, 0, logits.length, position, params)).toBe(
            plainDraw(logits, temperature, rowKeyOf(seed, position)),
          );
        },
      ),
      { numRuns: 400 },
    );
  });

  it('over a vocabulary of 4,096 (most tokens ruled out by their hash alone) the draw is still the plain draw', () => {
    const vocab = 4096;
    for (const [spread, temperature] of [
      [0.5, 1],
      [3, 1],
      [8, 0.7],
      [1, 2],
    ]) {
      const logits = Float32Array.from(
        { length: vocab },
        (_, i) => Math.sin(i * 0.37 + spread) * spread + (i % 211 === 0 ? spread : 0),
      );
      for (let position = 0; position < 24; position++) {
        const params = { temperature, topP: 1, seed: 17 + position };
        expect(chooseToken(logits, 0, vocab, position, params)).toBe(
          plainDraw(logits, temperature, rowKeyOf(params.seed, position)),
        );
      }
    }
  });

  it('Gumbel-top-k is the plain sort of every positive weight by log weight plus noise', () => {
    fc.assert(
      fc.property(row, fc.nat(), fc.integer({ min: 0, max: 12 }), (logits, key, k) => {
        const w = Float64Array.from(logits, (l) => (l < -30 ? 0 : Math.exp(l / 4)));
        expect(gumbelTopK(w, key, k)).toEqual(plainTopK(w, key, k));
      }),
      { numRuns: 400 },
    );
  });
});

describe('the draw from the likeliest tokens (the draft graph top-k)', () => {
  // Rows of 300 logits with exact ties, from cold to flat; the ids sorted as TopK returns them.
  const VOCAB = 300;
  const rows = Array.from({ length: 24 }, (_, r) =>
    Float32Array.from(
      { length: VOCAB },
      (_, i) => (Math.round(((i * 7919 + r * 104729) % 997) / 9) / 7) * (1 + (r % 4)),
    ),
  );
  const top = (row: Float32Array, count: number, t: number): RowTop => {
    const ids = Int32Array.from(topK(row, count));
    return {
      ids,
      logits: Float32Array.from(ids, (i) => row[i]),
      offset: 0,
      count,
      logMass: logSumExp(row, 0, VOCAB, t),
    };
  };

  it.each([
    ['greedy', { temperature: 0, topP: 1, seed: 1 }],
    ['T 1', { temperature: 1, topP: 1, seed: 2 }],
    ['T 0.3', { temperature: 0.3, topP: 1, seed: 8 }],
    ['T 0.7, top-p 0.9', { temperature: 0.7, topP: 0.9, seed: 3 }],
    ['T 0.05, top-p 0.9 (a nucleus of a few tokens)', { temperature: 0.05, topP: 0.9, seed: 7 }],
    ['T 1.3, top-k 40, top-p 0.8', { temperature: 1.3, topP: 0.8, seed: 4, topK: 40 }],
    ['T 0.9, top-k 64', { temperature: 0.9, topP: 1, seed: 5, topK: 64 }],
    ['T 0.9, top-k 100 (beyond the top)', { temperature: 0.9, topP: 1, seed: 6, topK: 100 }],
  ])('is chooseToken, from the top 64, the top 8 or the whole row (%s)', (_, params) => {
    for (const count of [8, 64, VOCAB]) {
      for (const [r, row] of rows.entries()) {
        const known = top(row, count, params.temperature || 1);
        for (let position = 0; position < 6; position++) {
          const token = chooseTokenFromTop(known, row, 0, VOCAB, position, params);
          expect({ count, r, position, token }).toEqual({
            count,
            r,
            position,
            token: chooseToken(row, 0, VOCAB, position, params),
          });
        }
      }
    }
  });
});
