import fc from 'fast-check';
import { quotaAdmits, quotaPeriod, quotaUsage } from './quota-usage.js';

describe('quotaUsage', () => {
  it('reports remaining, fraction and state at the edges', () => {
    expect(quotaUsage(0, 1000)).toEqual({
      used: 0,
      limit: 1000,
      remaining: 1000,
      fraction: 0,
      overBy: 0,
      state: 'ok',
    });
    expect(quotaUsage(799, 1000).state).toBe('ok');
    expect(quotaUsage(800, 1000).state).toBe('warning');
    expect(quotaUsage(999, 1000).state).toBe('warning');
    expect(quotaUsage(1000, 1000)).toMatchObject({ remaining: 0, fraction: 1, state: 'exceeded' });
    expect(quotaUsage(1200, 1000)).toMatchObject({ remaining: 0, fraction: 1, overBy: 200 });
  });

  it('refuses negative usage and non-positive limits', () => {
    expect(() => quotaUsage(-1, 10)).toThrow(RangeError);
    expect(() => quotaUsage(1, 0)).toThrow(RangeError);
    expect(() => quotaUsage(Number.NaN, 10)).toThrow(RangeError);
  });

  it('keeps used = limit - remaining + overBy and the fraction in [0, 1]', () => {
    fc.assert(
      fc.property(fc.nat(10_000_000), fc.integer({ min: 1, max: 10_000_000 }), (used, limit) => {
        const q = quotaUsage(used, limit);
        expect(q.limit - q.remaining + q.overBy).toBe(used);
        expect(q.fraction).toBeGreaterThanOrEqual(0);
        expect(q.fraction).toBeLessThanOrEqual(1);
        expect(q.state === 'exceeded').toBe(!quotaAdmits(used, 0, limit) || used === limit);
      }),
    );
  });
});

describe('quotaAdmits', () => {
  it('admits a reservation that lands exactly on the limit and no more', () => {
    expect(quotaAdmits(900, 100, 1000)).toBe(true);
    expect(quotaAdmits(900, 101, 1000)).toBe(false);
    expect(() => quotaAdmits(0, -1, 10)).toThrow(RangeError);
  });
});

describe('quotaPeriod', () => {
  it('is the UTC calendar month, across a year end', () => {
    const p = quotaPeriod(new Date('2026-12-31T23:59:59.999Z'));
    expect(p.from.toISOString()).toBe('2026-12-01T00:00:00.000Z');
    expect(p.to.toISOString()).toBe('2027-01-01T00:00:00.000Z');
  });
});
