import fc from 'fast-check';

import { widthUnderLoad } from '../src/index.js';

describe('widthUnderLoad (the row budget shared by the requests in flight)', () => {
  it('keeps the asked width with one request, and narrows to a share under load', () => {
    expect(widthUnderLoad(4, 1, 16)).toBe(4);
    expect(widthUnderLoad(16, 1, 16)).toBe(16);
    expect(widthUnderLoad(16, 2, 16)).toBe(8);
    expect(widthUnderLoad(4, 4, 16)).toBe(4);
    expect(widthUnderLoad(4, 8, 16)).toBe(2);
    expect(widthUnderLoad(4, 16, 16)).toBe(1);
    expect(widthUnderLoad(4, 100, 16)).toBe(1); // never below one row
  });

  it('never exceeds the ask or the budget share (unless 1), and never grows with load', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 16 }),
        fc.integer({ min: 1, max: 64 }),
        fc.integer({ min: 1, max: 256 }),
        (width, inFlight, budget) => {
          const w = widthUnderLoad(width, inFlight, budget);
          expect(w).toBeGreaterThanOrEqual(1);
          expect(w).toBeLessThanOrEqual(width);
          if (w > 1) expect(w * inFlight).toBeLessThanOrEqual(budget);
          expect(widthUnderLoad(width, inFlight + 1, budget)).toBeLessThanOrEqual(w);
        },
      ),
    );
  });

  it('refuses a width, load or budget below one', () => {
    expect(() => widthUnderLoad(0, 1, 16)).toThrow(/width 0/);
    expect(() => widthUnderLoad(4, 0, 16)).toThrow(/in flight 0/);
    expect(() => widthUnderLoad(4, 1, 0)).toThrow(/budget 0/);
  });
});
