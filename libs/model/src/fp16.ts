// IEEE 754 binary16 <-> binary32: f16 checkpoints (dtype.ts) and hidden states on the stage
// wire (apps/stage-node wire/frame.ts); the only implementation in the repository. Encoding
// rounds to nearest, ties to even (as a GPU's cast does), and saturates to +-Infinity past
// 65504. A NaN stays a NaN of the same sign, quiet, keeping the top 9 bits of its payload
// (IEEE 754-2019 6.2.3: a narrowing conversion of a NaN delivers a quiet NaN and should keep
// as much payload as fits); it never becomes an infinity.
//
// Worked example: 1 + 2^-11 lies exactly between the halves 1 and 1 + 2^-10; the tie goes to
// the even mantissa, 1 (0x3c00). 1 + 3 * 2^-11 ties between 1 + 2^-10 and 1 + 2^-9 and goes
// to 1 + 2^-9 (0x3c02).

const scratch = new Float32Array(1);
const scratchBits = new Uint32Array(scratch.buffer);

/** The binary16 bits nearest to `value` (ties to even). */
export function toHalfBits(value: number): number {
  scratch[0] = value;
  return halfFromFloatBits(scratchBits[0]);
}

function halfFromFloatBits(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  let mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 112; // rebias 127 -> 15
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal half: value = h * 2^-24, h = (1.mant * 2^23) >> (14 - e).
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1) === 1)) h++;
    return sign | h; // h = 0x400 carries into the smallest normal, which is the right value
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1)) h++; // may carry up to Infinity
  return sign | h;
}

let decodeTable: Float32Array | undefined; // [65536] float value of every half bit pattern

function table(): Float32Array {
  if (decodeTable) return decodeTable;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) t[h] = halfBitsToNumber(h);
  decodeTable = t;
  return t;
}

/** The exact value of binary16 bits `h`. */
export function halfBitsToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant === 0 ? sign * Infinity : NaN;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** Encodes floats as binary16. */
export function encodeFp16(
  values: Float32Array, // [n]
  out: Uint16Array = new Uint16Array(values.length), // [n]
): Uint16Array {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  for (let i = 0; i < values.length; i++) out[i] = halfFromFloatBits(bits[i]);
  return out;
}

/** Decodes binary16 into floats (exact: every half is a float). */
export function decodeFp16(
  halves: Uint16Array, // [n]
  out: Float32Array = new Float32Array(halves.length), // [n]
): Float32Array {
  const t = table();
  for (let i = 0; i < halves.length; i++) out[i] = t[halves[i]];
  return out;
}
