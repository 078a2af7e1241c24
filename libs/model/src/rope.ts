// Rotary embedding frequencies exactly as transformers computes them for Llama
// (`_compute_default_rope_parameters` and `_compute_llama3_parameters`), rounded to f32 like the
// torch tensors they come from.
import type { LlamaConfig } from './config.js';

/** Inverse frequencies of the rotary embedding. */
export function ropeInvFreq(config: LlamaConfig): Float32Array /* [headDim / 2] */ {
  const dim = config.headDim;
  const half = dim / 2;
  const inv = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    // torch: 1 / base ** (arange(0, dim, 2).float() / dim), all in f32.
    const exponent = Math.fround((2 * i) / dim);
    inv[i] = Math.fround(1 / Math.fround(Math.pow(config.ropeTheta, exponent)));
  }
  const rs = config.ropeScaling;
  if (!rs) return inv;
  const lowFreqWavelen = rs.originalMaxPositions / rs.lowFreqFactor;
  const highFreqWavelen = rs.originalMaxPositions / rs.highFreqFactor;
  for (let i = 0; i < half; i++) {
    const f = inv[i];
    const wavelen = (2 * Math.PI) / f;
    if (wavelen > lowFreqWavelen) {
      inv[i] = f / rs.factor;
    } else if (wavelen >= highFreqWavelen) {
      // Medium frequencies: interpolate between the scaled and the original frequency.
      const smooth =
        (rs.originalMaxPositions / wavelen - rs.lowFreqFactor) /
        (rs.highFreqFactor - rs.lowFreqFactor);
      inv[i] = (1 - smooth) * (f / rs.factor) + smooth * f;
    }
  }
  return inv;
}

/**
 * cos and sin of position * invFreq, duplicated over both halves of the head dimension (the
 * rotate_half convention: element j pairs with j + headDim/2).
 */
export function ropeCosSin(
  invFreq: Float32Array, // [headDim / 2]
  position: number,
): { cos: Float32Array; sin: Float32Array } /* each [headDim] */ {
  const half = invFreq.length;
  const cos = new Float32Array(2 * half);
  const sin = new Float32Array(2 * half);
  for (let i = 0; i < half; i++) {
    const angle = Math.fround(position * invFreq[i]);
    cos[i] = cos[i + half] = Math.cos(angle);
    sin[i] = sin[i + half] = Math.sin(angle);
  }
  return { cos, sin };
}

/**
 * cos and sin of position * invFreq for every position below max_position_embeddings, [maxPositions,
 * headDim / 2] each: the tables ONNX Runtime's RotaryEmbedding reads (non-interleaved halves),
 * computed as ropeCosSin computes them for the reference forward.
 */
export function ropeTables(config: LlamaConfig): { cos: Float32Array; sin: Float32Array } {
  const inv = ropeInvFreq(config);
  const half = inv.length;
  const cos = new Float32Array(config.maxPositions * half);
  const sin = new Float32Array(config.maxPositions * half);
  for (let p = 0; p < config.maxPositions; p++) {
    for (let i = 0; i < half; i++) {
      const angle = Math.fround(p * inv[i]);
      cos[p * half + i] = Math.cos(angle);
      sin[p * half + i] = Math.sin(angle);
    }
  }
  return { cos, sin };
}
