// Hidden states as raw little-endian bytes on the wire. fp32 is sent without a copy (a view
// over the Float32Array); fp16 halves the bytes at the cost of one rounding per value.
import { endianness } from 'node:os';
import { StageProtocolError } from './errors.js';
import { decodeFp16, encodeFp16 } from './fp16.js';

if (endianness() !== 'LE') {
  // Views over typed arrays would put big-endian bytes on the wire.
  throw new Error('the stage wire format needs a little-endian host');
}

export type WireDtype = 'FP32' | 'FP16';

/** A tensor as the proto loader hands it over (enums as strings, bytes as a Buffer). */
export interface WireTensor {
  dtype: WireDtype | 'DTYPE_UNSPECIFIED';
  shape: number[];
  data: Uint8Array;
}

const BYTES: Record<WireDtype, number> = { FP32: 4, FP16: 2 };

export function encodeTensor(
  values: Float32Array, // row-major, shape `shape`
  shape: readonly number[],
  dtype: WireDtype,
): WireTensor {
  checkSize(values.length, shape, 'encodeTensor');
  if (dtype === 'FP32') {
    return {
      dtype,
      shape: [...shape],
      data: new Uint8Array(values.buffer, values.byteOffset, values.byteLength),
    };
  }
  const halves = encodeFp16(values);
  return { dtype, shape: [...shape], data: new Uint8Array(halves.buffer) };
}

/** Decodes a wire tensor into floats, checking that the byte count matches the shape. */
export function decodeTensor(t: WireTensor, context: string): Float32Array {
  if (t.dtype !== 'FP32' && t.dtype !== 'FP16') {
    throw new StageProtocolError('DTYPE_UNSUPPORTED', `${context}: dtype ${t.dtype}`);
  }
  const count = t.shape.reduce((a, b) => a * b, 1);
  const expected = count * BYTES[t.dtype];
  if (t.data.byteLength !== expected) {
    throw new StageProtocolError(
      'TENSOR_SIZE',
      `${context}: shape [${t.shape.join(', ')}] ${t.dtype} needs ${expected} bytes, got ${t.data.byteLength}`,
    );
  }
  if (t.dtype === 'FP32') {
    // Received buffers are rarely 4-byte aligned inside the message; copy only when needed.
    if (t.data.byteOffset % 4 === 0)
      return new Float32Array(t.data.buffer, t.data.byteOffset, count);
    return new Float32Array(copyBytes(t.data));
  }
  const halves =
    t.data.byteOffset % 2 === 0
      ? new Uint16Array(t.data.buffer, t.data.byteOffset, count)
      : new Uint16Array(copyBytes(t.data));
  return decodeFp16(halves);
}

/** A fresh, aligned copy. Not Buffer#slice: that returns a view over the shared pool. */
function copyBytes(data: Uint8Array): ArrayBuffer {
  const out = new ArrayBuffer(data.byteLength);
  new Uint8Array(out).set(data);
  return out;
}

function checkSize(length: number, shape: readonly number[], context: string): void {
  const count = shape.reduce((a, b) => a * b, 1);
  if (count !== length) {
    throw new StageProtocolError(
      'TENSOR_SIZE',
      `${context}: shape [${shape.join(', ')}] holds ${count} values, got ${length}`,
    );
  }
}
