import { BatchMeter, type BatchCounters } from './batch-meter.js';

/** A meter over counters and a clock the test moves. */
function setup(head = true) {
  let t = 0;
  const c: BatchCounters = { calls: 0, requests: 0, rows: 0, tokens: head ? 0 : null };
  let inFlight = 0;
  const meter = new BatchMeter(
    () => c,
    () => (head ? inFlight : null),
    () => t,
    1000,
  );
  /** `calls` calls of `requests` requests with `rows` rows each, streaming `tokens`. */
  const compute = (calls: number, requests: number, rows: number, tokens = 0) => {
    c.calls += calls;
    c.requests += calls * requests;
    c.rows += calls * requests * rows;
    if (c.tokens !== null) c.tokens += tokens;
  };
  return {
    meter,
    compute,
    advance: (ms: number) => (t += ms),
    running: (n: number) => (inFlight = n),
  };
}

describe('BatchMeter', () => {
  it('reports what the calls took since the newest reading a span old', () => {
    const { meter, compute, advance, running } = setup();
    expect(meter.sample()).toEqual({
      spanMs: 0,
      calls: 0,
      requests: 0,
      rows: 0,
      inFlight: 0,
      tokens: 0,
    });
    advance(500);
    compute(10, 2, 3, 20);
    running(2);
    expect(meter.sample()).toEqual({
      spanMs: 500,
      calls: 10,
      requests: 20,
      rows: 60,
      inFlight: 2,
      tokens: 20,
    });
    advance(500);
    compute(5, 4, 1, 10);
    // The first reading is now exactly a span old: still the baseline.
    expect(meter.sample()).toMatchObject({ spanMs: 1000, calls: 15, requests: 40, rows: 80 });
    advance(500);
    // The 500 ms reading becomes the baseline: the first 10 calls leave the window.
    expect(meter.sample()).toMatchObject({ spanMs: 1000, calls: 5, requests: 20, tokens: 10 });
    advance(2000);
    running(0);
    expect(meter.sample()).toMatchObject({ calls: 0, requests: 0, rows: 0, inFlight: 0 });
  });

  it('reads as often as it is asked without shortening the window', () => {
    const { meter, compute, advance } = setup();
    meter.sample();
    advance(600);
    compute(3, 1, 2, 3);
    for (let i = 0; i < 5; i++) {
      advance(10);
      expect(meter.sample()).toMatchObject({ calls: 3, rows: 6, tokens: 3 });
    }
  });

  it('reports no tokens and no requests in flight on a stage that is not the head', () => {
    const { meter, compute, advance } = setup(false);
    meter.sample();
    advance(100);
    compute(2, 1, 4);
    expect(meter.sample()).toEqual({
      spanMs: 100,
      calls: 2,
      requests: 2,
      rows: 8,
      inFlight: null,
      tokens: null,
    });
  });
});
