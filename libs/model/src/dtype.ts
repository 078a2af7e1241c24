// Conversions between the weight dtypes a checkpoint may hold and the f32 every computation
// here uses. Little-endian throughout, as safetensors prescribes. The binary16 conversion is
// fp16.ts's, the one the stage wire format uses too.
import { decodeFp16, encodeFp16 } from './fp16.js';

export type WeightDtype = 'F32' | 'F16' | 'BF16';

export const DTYPE_BYTES: Readonly<Record<WeightDtype, number>> = { F32: 4, F16: 2, BF16: 2 };

export function isWeightDtype(d: string): d is WeightDtype {
  return d === 'F32' || d === 'F16' || d === 'BF16';
}

/** Decodes raw little-endian bytes of `dtype` into a fresh f32 array. */
export function toFloat32(bytes: Uint8Array, dtype: WeightDtype): Float32Array {
  // Copy into an aligned buffer: the source may sit at any offset of a larger read buffer.
  const aligned = new Uint8Array(bytes.byteLength);
  aligned.set(bytes);
  switch (dtype) {
    case 'F32':
      return new Float32Array(aligned.buffer);
    case 'BF16': {
      const src = new Uint16Array(aligned.buffer);
      const out = new Float32Array(src.length);
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < src.length; i++) bits[i] = src[i] << 16;
      return out;
    }
    case 'F16': {
      return decodeFp16(new Uint16Array(aligned.buffer));
    }
  }
}

/** Encodes f32 values as `dtype` bytes (round to nearest even for the 16-bit formats). */
export function fromFloat32(values: Float32Array, dtype: WeightDtype): Uint8Array {
  switch (dtype) {
    case 'F32':
      return new Uint8Array(values.slice().buffer);
    case 'BF16': {
      const bits = new Uint32Array(values.slice().buffer);
      const out = new Uint16Array(values.length);
      for (let i = 0; i < bits.length; i++) {
        const b = bits[i];
        out[i] = (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
      }
      return new Uint8Array(out.buffer);
    }
    case 'F16': {
      return new Uint8Array(encodeFp16(values).buffer);
    }
  }
}
