// Seeded sampling: the target's token at position p is a pure function of (logits at p - 1,
// seed, p). The random number comes from a counter-based generator keyed by (seed, p), so it
// never depends on how many candidates were tried, which method ran, or in which order rows
// were computed. That is what makes AR, PP, STPP and PipeDec emit identical tokens.

export interface SamplingParams {
  /** 0 = greedy (argmax, lowest index wins a tie). */
  temperature: number;
  /** Nucleus mass in (0, 1]; 1 = the whole distribution. */
  topP: number;
  /** Any integer in [0, 2^53). */
  seed: number;
}

export const GREEDY: SamplingParams = { temperature: 0, topP: 1, seed: 0 };

function mix32(x: number): number {
  // The lowbias32 finalizer (Chris Wellons): full avalanche on 32 bits.
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

/** A uniform number in [0, 1) for (seed, position), 53 random bits. */
export function uniformAt(seed: number, position: number): number {
  const lo = seed >>> 0;
  const hi = Math.floor(seed / 0x1_0000_0000) >>> 0;
  const a = mix32(lo ^ mix32(hi ^ mix32(position ^ 0x9e3779b9)));
  const b = mix32(a ^ 0x85ebca6b ^ mix32(position + 0x27d4eb2f));
  return ((a >>> 5) * 0x4000000 + (b >>> 6)) / 0x20000000000000;
}

/** Index of the largest value in logits[offset, offset + vocab); the lowest index wins ties. */
export function argmax(logits: Float32Array, offset: number, vocab: number): number {
  let best = 0;
  let bestValue = logits[offset];
  for (let i = 1; i < vocab; i++) {
    const v = logits[offset + i];
    if (v > bestValue) {
      bestValue = v;
      best = i;
    }
  }
  return best;
}

/**
 * The token at `position`, drawn from the distribution whose logits are the row
 * logits[offset, offset + vocab) (the model's output at position - 1).
 *
 * The draw walks the candidates in a fixed order and stops where the cumulative mass passes
 * u * mass: with top-p < 1 the candidates are the nucleus sorted by probability (ties by
 * index); with top-p = 1 they are all tokens in index order (no sort needed). Any fixed order
 * samples the same distribution; what matters is that every method uses this function.
 *
 * Worked example, temperature 1, topP 0.8, probabilities [0.5, 0.3, 0.2]: the nucleus is
 * tokens 0 and 1 (0.5 + 0.3 reaches 0.8); renormalized [0.625, 0.375]; u = 0.7 picks token 1.
 */
export function chooseToken(
  logits: Float32Array, // [.., vocab] rows; one row is read
  offset: number,
  vocab: number,
  position: number,
  params: SamplingParams,
): number {
  if (params.temperature <= 0) return argmax(logits, offset, vocab);
  const max = logits[offset + argmax(logits, offset, vocab)];
  const probs = new Float64Array(vocab); // [vocab] unnormalized
  let total = 0;
  for (let i = 0; i < vocab; i++) {
    const p = Math.exp((logits[offset + i] - max) / params.temperature);
    probs[i] = p;
    total += p;
  }
  const u = uniformAt(params.seed, position);
  if (params.topP >= 1) {
    const target = u * total;
    let acc = 0;
    for (let i = 0; i < vocab; i++) {
      acc += probs[i];
      if (target < acc) return i;
    }
    return vocab - 1;
  }
  const nucleus = nucleusOf(probs, params.topP * total);
  let mass = 0;
  for (const t of nucleus) mass += probs[t];
  const target = u * mass;
  let acc = 0;
  for (const t of nucleus) {
    acc += probs[t];
    if (target < acc) return t;
  }
  return nucleus[nucleus.length - 1];
}

/**
 * The shortest prefix of the tokens sorted by probability (ties by index) whose mass reaches
 * `limit`. Sorting only the tokens above a falling threshold gives the same prefix as sorting
 * them all: every token above a threshold precedes every token below it.
 */
function nucleusOf(probs: Float64Array /* [vocab] */, limit: number): number[] {
  let pmax = 0;
  for (const p of probs) pmax = Math.max(pmax, p);
  for (let thr = pmax / 16; ; thr /= 256) {
    const head: number[] = [];
    let mass = 0;
    for (let i = 0; i < probs.length; i++) {
      if (probs[i] >= thr || thr < 1e-300) {
        head.push(i);
        mass += probs[i];
      }
    }
    if (mass < limit && head.length < probs.length && thr >= 1e-300) continue;
    head.sort((a, b) => probs[b] - probs[a] || a - b);
    const out: number[] = [];
    let acc = 0;
    for (const t of head) {
      out.push(t);
      acc += probs[t];
      if (acc >= limit) break;
    }
    return out;
  }
}

/** log(sum(exp(row))) of one row, in float64; terms 30 nats below the max are skipped. */
export function logSumExp(
  logits: Float32Array, // [.., vocab] rows; one row is read
  offset: number,
  vocab: number,
  temperature = 1, // of logits / temperature
): number {
  const max = logits[offset + argmax(logits, offset, vocab)];
  let total = 0;
  for (let i = 0; i < vocab; i++) {
    const d = (logits[offset + i] - max) / temperature;
    if (d > -30) total += Math.exp(d);
  }
  return max / temperature + Math.log(total);
}

/** Natural-log softmax of one row, in float64. */
export function logSoftmax(
  logits: Float32Array, // [.., vocab] rows; one row is read
  offset: number,
  vocab: number,
): Float64Array /* [vocab] */ {
  const lse = logSumExp(logits, offset, vocab);
  const out = new Float64Array(vocab);
  for (let i = 0; i < vocab; i++) out[i] = logits[offset + i] - lse;
  return out;
}

/** Indices of the k largest values of row [offset, offset + length), best first, ties by lowest index. */
export function topK(
  values: Float32Array | Float64Array,
  k: number,
  offset = 0,
  length = values.length - offset,
): number[] {
  const best: number[] = [];
  for (let i = 0; i < length; i++) {
    const v = values[offset + i];
    if (best.length === k && v <= values[offset + best[k - 1]]) continue;
    let j = best.length === k ? k - 1 : best.length;
    if (best.length < k) best.push(i);
    while (j > 0 && values[offset + best[j - 1]] < v) {
      best[j] = best[j - 1];
      j--;
    }
    best[j] = i;
  }
  return best;
}
