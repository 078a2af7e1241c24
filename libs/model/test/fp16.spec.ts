import { decodeFp16, encodeFp16, halfBitsToNumber, toHalfBits } from '../src/fp16.js';

/** Next float32 above (dir 1) or below (dir -1) a positive float32 `x`. */
function nextFloat(x: number, dir: 1 | -1): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer);
  u[0] += dir;
  return f[0];
}

describe('fp16', () => {
  it('round-trips every half that is not NaN, signed zeros included', () => {
    for (let h = 0; h < 65536; h++) {
      const v = halfBitsToNumber(h);
      if (Number.isNaN(v)) continue;
      expect(toHalfBits(v)).toBe(h);
    }
  });

  it('rounds ties to the even neighbour and everything else to the nearer one', () => {
    // Consecutive positive finite halves: their midpoint has 12 significant bits, so it is an
    // exact float32 and a true tie.
    for (let h = 0; h < 0x7bff; h++) {
      const lo = halfBitsToNumber(h);
      const hi = halfBitsToNumber(h + 1);
      const mid = (lo + hi) / 2;
      expect(Math.fround(mid)).toBe(mid);
      const even = h % 2 === 0 ? h : h + 1;
      expect(toHalfBits(mid)).toBe(even);
      expect(toHalfBits(-mid)).toBe(even | 0x8000);
      expect(toHalfBits(nextFloat(mid, -1))).toBe(h);
      expect(toHalfBits(nextFloat(mid, 1))).toBe(h + 1);
    }
  });

  it('worked examples from the header comment', () => {
    expect(toHalfBits(1 + 2 ** -11)).toBe(0x3c00);
    expect(toHalfBits(1 + 3 * 2 ** -11)).toBe(0x3c02);
  });

  it('saturates past the largest half and keeps infinities and NaN', () => {
    expect(toHalfBits(65504)).toBe(0x7bff);
    expect(toHalfBits(65519.99)).toBe(0x7bff);
    expect(toHalfBits(65520)).toBe(0x7c00); // the tie goes to the even pattern, Infinity
    expect(toHalfBits(1e9)).toBe(0x7c00);
    expect(toHalfBits(-1e9)).toBe(0xfc00);
    expect(toHalfBits(Infinity)).toBe(0x7c00);
    expect(toHalfBits(-Infinity)).toBe(0xfc00);
    expect(Number.isNaN(halfBitsToNumber(toHalfBits(NaN)))).toBe(true);
  });

  it('turns every NaN into a quiet NaN of the same sign, with the top of its payload', () => {
    const f = new Float32Array(1);
    const bits = new Uint32Array(f.buffer);
    const cases: [number, number][] = [
      [0x7fc00000, 0x7e00], // the canonical quiet NaN
      [0xffc00000, 0xfe00], // negative
      [0x7f800001, 0x7e00], // signalling, payload below the kept bits: quiet, not Infinity
      [0x7fa00000, 0x7f00], // signalling with a payload bit that fits
      [0x7fffe000, 0x7fff], // every kept payload bit
    ];
    for (const [from, to] of cases) {
      bits[0] = from; // read as bits: a JS number may not carry a signalling NaN's payload
      expect(encodeFp16(f)[0]).toBe(to);
    }
    expect(toHalfBits(NaN) & 0x7e00).toBe(0x7e00);
    for (let h = 0x7c01; h <= 0x7fff; h++) {
      expect(Number.isNaN(halfBitsToNumber(h))).toBe(true);
      expect(Number.isNaN(halfBitsToNumber(h | 0x8000))).toBe(true);
    }
    expect(Number.isNaN(decodeFp16(new Uint16Array([0x7e00, 0xfd01]))[1])).toBe(true);
  });

  it('flushes below half the smallest subnormal to signed zero', () => {
    expect(toHalfBits(2 ** -26)).toBe(0);
    expect(toHalfBits(2 ** -25)).toBe(0); // tie with 2^-24, goes to the even 0
    expect(toHalfBits(nextFloat(2 ** -25, 1))).toBe(1);
    expect(toHalfBits(-(2 ** -30))).toBe(0x8000);
    expect(toHalfBits(1e-45)).toBe(0); // a float32 subnormal
  });

  it('encodes and decodes arrays, offset views included', () => {
    const backing = new Float32Array([9, 0.1, -2.5, 1000.7, 3e-6, 7]);
    const view = backing.subarray(1, 5); // [4]
    const halves = encodeFp16(view);
    const back = decodeFp16(halves);
    expect(Array.from(halves)).toEqual([0.1, -2.5, 1000.7, 3e-6].map(toHalfBits));
    for (let i = 0; i < view.length; i++) {
      // Half an ulp: relative for normals, 2^-25 absolute in the subnormal range (3e-6).
      const bound = Math.max(Math.abs(view[i]) * 2 ** -11, 2 ** -25);
      expect(Math.abs(back[i] - view[i])).toBeLessThanOrEqual(bound);
    }
  });
});
