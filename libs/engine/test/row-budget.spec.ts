import fc from 'fast-check';

import { decodingUnderLoad, layerWidthUnderLoad, widthUnderLoad } from '../src/index.js';

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

describe('layerWidthUnderLoad (a running PipeDec request following the load)', () => {
  it('is the budget share up to the cut and 0 (no speculation) past it', () => {
    //                       width, in flight, budget, cut
    expect(layerWidthUnderLoad(4, 1, 16, 3)).toBe(4);
    expect(layerWidthUnderLoad(4, 3, 16, 3)).toBe(4);
    expect(layerWidthUnderLoad(16, 3, 16, 3)).toBe(5);
    expect(layerWidthUnderLoad(4, 4, 16, 3)).toBe(0);
    expect(layerWidthUnderLoad(4, 2, 16, 1)).toBe(0); // npm start's cut on one host
    expect(layerWidthUnderLoad(4, 1, 16, 1)).toBe(4); // alone again: full width
  });

  it('agrees with the starting rule: speculates exactly when a request starting now would', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 16 }),
        fc.integer({ min: 1, max: 64 }),
        fc.integer({ min: 1, max: 256 }),
        fc.integer({ min: 1, max: 16 }),
        (width, inFlight, budget, cut) => {
          const w = layerWidthUnderLoad(width, inFlight, budget, cut);
          const starting = decodingUnderLoad('pipedec', width, inFlight, budget, cut);
          expect(w).toBe(starting.method === 'pp' ? 0 : starting.width);
        },
      ),
    );
  });

  it('refuses a cut below one', () => {
    expect(() => layerWidthUnderLoad(4, 1, 16, 0)).toThrow(/maxInFlight must be >= 1/);
  });
});

describe('decodingUnderLoad (what a request starting now decodes with)', () => {
  it('speculates up to maxInFlight requests, narrowed, and decodes as PP past it', () => {
    expect(decodingUnderLoad('pipedec', 4, 1, 16, 3)).toEqual({ method: 'pipedec', width: 4 });
    expect(decodingUnderLoad('pipedec', 16, 3, 16, 3)).toEqual({ method: 'pipedec', width: 5 });
    expect(decodingUnderLoad('pipedec', 4, 4, 16, 3)).toEqual({ method: 'pp', width: 1 });
    expect(decodingUnderLoad('stpp', 4, 4, 16, 3)).toEqual({ method: 'pp', width: 1 });
    expect(decodingUnderLoad('stpp', 4, 2, 16, 3)).toEqual({ method: 'stpp', width: 4 });
    expect(decodingUnderLoad('pp', 4, 1, 16, 3)).toEqual({ method: 'pp', width: 1 });
    // A large cut keeps every request speculating (the behaviour before the cut existed).
    expect(decodingUnderLoad('pipedec', 4, 16, 16, 16)).toEqual({ method: 'pipedec', width: 1 });
  });

  it("is alone today's method, falls back only with load, and never speculates wider than the share", () => {
    fc.assert(
      fc.property(
        fc.constantFrom('pp' as const, 'stpp' as const, 'pipedec' as const),
        fc.integer({ min: 1, max: 16 }),
        fc.integer({ min: 1, max: 64 }),
        fc.integer({ min: 1, max: 256 }),
        fc.integer({ min: 1, max: 32 }),
        (method, width, inFlight, budget, cut) => {
          const d = decodingUnderLoad(method, width, inFlight, budget, cut);
          if (inFlight === 1) expect(d.method).toBe(method);
          if (d.method === 'pp') {
            expect(d.width).toBe(1);
            expect(method === 'pp' || inFlight > cut).toBe(true);
          } else {
            expect(d.method).toBe(method);
            expect(inFlight).toBeLessThanOrEqual(cut);
            expect(d.width).toBe(widthUnderLoad(width, inFlight, budget));
          }
          // More load never turns speculation back on.
          const more = decodingUnderLoad(method, width, inFlight + 1, budget, cut);
          if (d.method === 'pp') expect(more.method).toBe('pp');
        },
      ),
    );
  });

  it('refuses a cut below one', () => {
    expect(() => decodingUnderLoad('pipedec', 4, 1, 16, 0)).toThrow(/maxInFlight/);
  });
});
