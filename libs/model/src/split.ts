import { ModelError } from './errors.js';

export interface LayerRange {
  layerStart: number; // inclusive
  layerEnd: number; // exclusive
}

/**
 * Splits `numLayers` into `stages` contiguous ranges whose sizes differ by at most one; the
 * earlier stages take the extra layers (the last stage also carries the LM head).
 * Example: splitLayers(10, 4) -> [0,3) [3,6) [6,8) [8,10).
 */
export function splitLayers(numLayers: number, stages: number): LayerRange[] {
  if (!Number.isInteger(numLayers) || numLayers < 1) {
    throw new ModelError(
      'LAYER_RANGE_INVALID',
      `numLayers must be a positive integer, got ${numLayers}`,
    );
  }
  if (!Number.isInteger(stages) || stages < 1 || stages > numLayers) {
    throw new ModelError(
      'LAYER_RANGE_INVALID',
      `stages must be an integer in [1, ${numLayers}] (numLayers), got ${stages}`,
    );
  }
  const base = Math.floor(numLayers / stages);
  const extra = numLayers % stages;
  const ranges: LayerRange[] = [];
  let start = 0;
  for (let s = 0; s < stages; s++) {
    const size = base + (s < extra ? 1 : 0);
    ranges.push({ layerStart: start, layerEnd: start + size });
    start += size;
  }
  return ranges;
}
