// Seeded sampling: the target's token at position p is a pure function of (logits at p - 1,
// seed, p). The random numbers come from a counter-based generator keyed by (seed, p), so they
// never depends on how many candidates were tried, which method ran, or in which order rows
// were computed. That is what makes AR, PP, STPP and PipeDec emit identical tokens.

export interface SamplingParams {
  /** 0 = greedy (argmax, lowest index wins a tie). */
  temperature: number;
  /** Nucleus mass in (0, 1]; 1 = the whole distribution. */
  topP: number;
  /** Any integer in [0, 2^53). */
  seed: number;
  /** Only the k likeliest tokens (ties by lowest index) can be drawn; 0 or absent = all. */
  topK?: number;
  /**
   * How a drafted child is accepted (speculative methods only; AR and PP just sample):
   * 'exact' (default): only if it is the target's seeded draw, so every method emits the same
   * tokens for a seed; 'distribution': recursive rejection sampling (acceptance.ts), so the
   * tokens are distributed as the target's and more drafted children are accepted.
   */
  acceptance?: Acceptance;
}

export type Acceptance = 'exact' | 'distribution';

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
 * Gumbel noise for (seed, position, token): -log(-log u) with u uniform in (0, 1), 53 bits.
 * `rowKey` is rowKeyOf(seed, position), hashed once per row.
 */
export function gumbelAt(rowKey: number, token: number): number {
  return -Math.log(-Math.log(uniformKeyed(rowKey, token)));
}

/**
 * The key of one row's random stream. `salt` separates independent streams at the same
 * (seed, position): the target's draw (the default), the draft's proposals and the acceptance
 * tests of distribution mode (acceptance.ts).
 */
export function rowKeyOf(seed: number, position: number, salt = 0x632be5ab): number {
  const lo = seed >>> 0;
  const hi = Math.floor(seed / 0x1_0000_0000) >>> 0;
  return mix32(lo ^ mix32(hi ^ mix32(position ^ salt)));
}

/** A uniform number in (0, 1) for (row key, index), 53 bits: gumbelAt's uniform. */
export function uniformKeyed(rowKey: number, index: number): number {
  return uniformFrom(mix32(rowKey ^ mix32(index + 0x27d4eb2f)));
}

/** uniformKeyed from its first word `a`: its 27 high bits, then 26 bits of a second hash. */
function uniformFrom(a: number): number {
  const b = mix32(a ^ 0x85ebca6b);
  return ((a >>> 5) * 0x4000000 + (b >>> 6) + 0.5) / 0x20000000000000;
}

// Scanning a row at temperature > 0 (drawWhole, chooseTokenFromTop's tail, gumbelTopK) tests
// every token's uniform against a bound, and nearly every token fails it. Three hashes per
// token (mix32 of the index, of the key, then the low bits) made that scan ~47 us per 4,096
// tokens here, most of a draw: the last stage pays it for every row it verifies at T > 0, the
// draft for every row it proposes from. Three savings, the uniforms and draws unchanged:
//   - mix32(index + 0x27d4eb2f) does not depend on the row: it is computed once per index
//     (indexWords) and read from a table;
//   - the first word `a` alone fixes the uniform to within 2^-27: u < ((a >>> 5) + 1) / 2^27
//     (UNIFORM_UNITS). A token that the test rules out even at that upper bound is ruled out
//     for its exact uniform too, so only the few others pay for the second hash, and in
//     drawWhole most are ruled out before their logit is read;
//   - its top 10 bits bound its Gumbel noise (NOISE_CEILING), which rules out most of the
//     rest without an exp or a log.
// A draw over 4,096 tokens at T 1 takes 0.62-0.71x the time it did (chooseToken 54-89 ->
// 37-55 us, chooseTokenFromTop 41-65 -> 28-42 us), the same tokens
// (bench/results/sampling-scan-ab).
let indexWordTable = new Uint32Array(0);

/** mix32(i + 0x27d4eb2f) for i < vocab: uniformKeyed's row-independent half. */
function indexWords(vocab: number): Uint32Array {
  if (indexWordTable.length < vocab) {
    const table = new Uint32Array(vocab);
    for (let i = 0; i < vocab; i++) table[i] = mix32(i + 0x27d4eb2f);
    indexWordTable = table;
  }
  return indexWordTable;
}

/** 2^27: uniformFrom(a) < ((a >>> 5) + 1) / UNIFORM_UNITS, its 27 high bits plus one unit. */
const UNIFORM_UNITS = 0x8000000;

/** The largest Gumbel value gumbelAt can return (u = 1 - 2^-54): bounds which tokens can win. */
const GUMBEL_MAX = 37.5;

/**
 * The token at `position`, drawn from the distribution whose logits are the row
 * logits[offset, offset + vocab) (the model's output at position - 1).
 *
 * Gumbel-max: the token with the largest logit / temperature + g, where g is Gumbel noise
 * keyed by (seed, position, token), is a sample of softmax(logits / temperature); with
 * top-p < 1 the argmax runs over the nucleus only. The noise is shared by every model that
 * draws at this position: the draft proposes argmax(draft logits / T + g) with the same g
 * (DraftRunner), and when the draft's distribution is close to the target's the two argmaxes
 * coincide far more often than two independent draws would (a coupling: a Gumbel-max draw
 * changes only where the perturbed maximum changes). The previous rule, an inverse-CDF walk
 * with one uniform per position, coupled the two poorly once the distributions were wide.
 *
 * Worked example, temperature 1, logits [log 0.5, log 0.3, log 0.2], noise [0.1, 0.9, -0.4]:
 * scores [-0.59, -0.30, -2.01] pick token 1.
 */
export function chooseToken(
  logits: Float32Array, // [.., vocab] rows; one row is read
  offset: number,
  vocab: number,
  position: number,
  params: SamplingParams,
): number {
  if (params.temperature <= 0) return argmax(logits, offset, vocab);
  const t = params.temperature;
  const max = logits[offset + argmax(logits, offset, vocab)];
  const key = rowKeyOf(params.seed, position);
  let best = -1;
  let bestScore = -Infinity;
  const consider = (i: number) => {
    const base = (logits[offset + i] - max) / t;
    if (base + GUMBEL_MAX <= bestScore) return; // cannot win whatever its noise
    const score = base + gumbelAt(key, i);
    if (score > bestScore) {
      bestScore = score;
      best = i;
    }
  };
  if (hasTopK(params, vocab)) {
    for (const i of supportOf(logits, offset, vocab, params)) consider(i);
    return best;
  }
  if (params.topP >= 1) return drawWhole(logits, offset, vocab, max, t, key);
  const probs = new Float64Array(vocab); // [vocab] unnormalized
  let total = 0;
  for (let i = 0; i < vocab; i++) {
    probs[i] = Math.exp((logits[offset + i] - max) / t);
    total += probs[i];
  }
  for (const i of nucleusOf(probs, params.topP * total)) consider(i);
  return best;
}

/**
 * A token whose score would be log(w) + g, with w its weight and g its Gumbel noise from the
 * uniform u, beats `best` only if -log u < w * exp(-best). Since -log u >= 1 - u, a uniform
 * with 1 - u above w * exp(-best) (times this margin, far beyond rounding) rules the token
 * out with no logarithm; the scores that are computed are computed as before, so the draws
 * are the same tokens. Most tokens of a wide row are ruled out this way.
 */
const NOISE_MARGIN = 1 + 1e-9;
/**
 * A cheaper first test: a token whose bound w * exp(-best) * NOISE_MARGIN is below LOW_NOISE
 * is ruled out by any uniform with 1 - u > LOW_NOISE (all but 1 in 1,024), with no exp either.
 */
const LOW_NOISE = 1 / 1024;
/**
 * NOISE_CEILING[j] bounds the Gumbel noise of a uniform whose top 10 bits (a >>> 22) are j:
 * u < (j + 1) / 1024, and -log(-log u) grows with u. The last bucket is unbounded.
 */
const NOISE_CEILING = Float64Array.from({ length: 1024 }, (_, j) =>
  j === 1023 ? Infinity : -Math.log(-Math.log((j + 1) / 1024)),
);

/**
 * chooseToken over the whole row (top-p 1, no top-k): the highest log-weight plus noise,
 * ties to the lowest id, scoring only the tokens whose noise can still reach the best
 * (NOISE_MARGIN). `reach` is exp(-bestScore).
 */
function drawWhole(
  logits: Float32Array, // [.., vocab] rows; one row is read
  offset: number,
  vocab: number,
  max: number,
  t: number,
  key: number,
): number {
  const words = indexWords(vocab);
  let best = -1;
  let bestScore = -Infinity;
  let reach = Infinity;
  // In units of 2^-27 (UNIFORM_UNITS): a token whose (a >>> 5) + 1 is below reachUnits has
  // 1 - u > reach * NOISE_MARGIN >= exp(base) * reach * NOISE_MARGIN (base <= 0), so the last
  // test below rules it out before its logit is even read; set a hair low, never too high.
  let reachUnits = -Infinity;
  for (let i = 0; i < vocab; i++) {
    const a = mix32(key ^ words[i]);
    const above = (a >>> 5) + 1; // u < above / 2^27
    if (above < reachUnits) continue;
    const base = (logits[offset + i] - max) / t;
    // Its noise is below NOISE_CEILING[its top 10 bits]: if even that cannot reach the best,
    // neither can its score (a hair of slack for rounding), and no exp or log is needed. (This
    // also covers gumbelTopK's LOW_NOISE test: a bucket below the last bounds noise by 6.93.)
    if (base + NOISE_CEILING[a >>> 22] < bestScore - 1e-9) continue;
    // The test at the exact uniform, for the few tokens left.
    const u = uniformFrom(a);
    if (1 - u > Math.exp(base) * reach * NOISE_MARGIN) continue;
    const score = base - Math.log(-Math.log(u));
    if (score > bestScore) {
      bestScore = score;
      best = i;
      reach = Math.exp(-score);
      reachUnits = (1 - reach * NOISE_MARGIN * (1 + 1e-9)) * UNIFORM_UNITS - 1;
    }
  }
  return best;
}

/**
 * The `k` largest log(weights[i]) + Gumbel noise of (rowKey, i) over the tokens of positive
 * weight, in descending order (ties by lowest id): a draw of k tokens without replacement
 * from the distribution proportional to `weights` (Gumbel-top-k). Tokens whose noise cannot
 * reach the k-th best so far are skipped without a logarithm (NOISE_MARGIN).
 */
export function gumbelTopK(
  weights: Float32Array | Float64Array, // [vocab]
  rowKey: number,
  k: number,
): number[] {
  const tokens: number[] = [];
  const scores: number[] = [];
  if (k <= 0) return tokens;
  let reach = Infinity; // exp(-(the k-th best score)) once k tokens are held
  let low = 0; // weights below it have a bound under LOW_NOISE
  const words = indexWords(weights.length);
  for (let i = 0; i < weights.length; i++) {
    const w = weights[i];
    if (!(w > 0)) continue;
    const a = mix32(rowKey ^ words[i]);
    // The tests at the uniform's upper bound: within 2^-27 of 1 - u, so what they let through
    // and the exact tests would not is a few tokens in 10^8, scored to no effect.
    const below = 1 - ((a >>> 5) + 1) / UNIFORM_UNITS; // < 1 - u
    if (w < low && below > LOW_NOISE) continue;
    if (below > w * reach * NOISE_MARGIN) continue;
    const u = uniformFrom(a);
    const score = Math.log(w) - Math.log(-Math.log(u));
    const full = tokens.length === k;
    if (full && !(score > scores[k - 1])) continue;
    let j = full ? k - 1 : tokens.length;
    if (!full) {
      tokens.push(i);
      scores.push(score);
    }
    while (j > 0 && scores[j - 1] < score) {
      tokens[j] = tokens[j - 1];
      scores[j] = scores[j - 1];
      j--;
    }
    tokens[j] = i;
    scores[j] = score;
    if (tokens.length === k) {
      reach = Math.exp(-scores[k - 1]);
      low = LOW_NOISE / (reach * NOISE_MARGIN);
    }
  }
  return tokens;
}

/** A row's `count` likeliest tokens, descending by logit, ties by lowest id (TopK's order). */
export interface RowTop {
  ids: Int32Array; // [.., count] token ids; rows of `count`, one is read
  logits: Float32Array; // [.., count] their logits
  offset: number; // of the row read
  count: number;
  /** log(sum(exp(logits / temperature))) over the whole row, for a nucleus (top-p < 1). */
  logMass: number;
}

/**
 * chooseToken's draw, the same token, computed from the row's likeliest tokens (the draft
 * graph's TopK) instead of a pass over every logit. The support (the request's top-k, then its
 * nucleus) is drawn with the same Gumbel noise among those tokens. When the support is the
 * whole row (top-p 1, no top-k), a token outside them still wins if its noise is large
 * enough: every other token can be below that bound only, so only its noise is computed (no
 * logarithm), and the few above it are scored from `row`. Where the support reaches beyond
 * the known tokens in a way that needs their order (a top-k above `count`, or a nucleus not
 * complete within them), it is chooseToken on `row`.
 *
 * Worked example, temperature 1, top 2 of 3 logits [2, 1 | 0]: the two draw scores are
 * 0 + g0 and -1 + g1; if the best is 0.5, token 2 (base -2) needs g2 > 2.5, i.e. a uniform
 * above exp(-exp(-2.5)) = 0.921; only then is its score computed.
 */
export function chooseTokenFromTop(
  top: RowTop,
  row: Float32Array, // [.., vocab] rows: the full logits, read only where the top is not enough
  rowOffset: number,
  vocab: number,
  position: number,
  params: SamplingParams,
): number {
  const { ids, logits, offset, count } = top;
  if (params.temperature <= 0) return ids[offset];
  const full = () => chooseToken(row, rowOffset, vocab, position, params);
  const t = params.temperature;
  const max = logits[offset];
  const weight = (j: number) => Math.exp((logits[offset + j] - max) / t);
  let n = count; // the support's tokens among the top
  let whole = count === vocab; // whether the support is known to lie within the top
  let total = Math.exp(top.logMass - max / t);
  if (hasTopK(params, vocab)) {
    if (params.topK! > count) return full();
    n = params.topK!;
    whole = true;
    total = 0;
    for (let j = 0; j < n; j++) total += weight(j);
  }
  if (params.topP < 1) {
    const limit = params.topP * total;
    let mass = 0;
    let m = 0;
    while (m < n && mass < limit) mass += weight(m++);
    if (mass < limit && !whole) return full();
    n = m;
    whole = true;
  }
  const key = rowKeyOf(params.seed, position);
  let best = ids[offset];
  let bestScore = -Infinity;
  for (let j = 0; j < n; j++) {
    const base = (logits[offset + j] - max) / t;
    if (base + GUMBEL_MAX <= bestScore) break; // descending: no later token can win
    const score = base + gumbelAt(key, ids[offset + j]);
    if (score > bestScore) {
      bestScore = score;
      best = ids[offset + j];
    }
  }
  if (whole) return best;
  // Every other token's base is at most the last known one's: it needs noise above
  // bestScore - that base, i.e. a uniform above exp(-exp(-need)) (less a margin for rounding).
  const need = bestScore - (logits[offset + count - 1] - max) / t;
  const uMin = Math.exp(-Math.exp(-need)) - 1e-9;
  const uMinUnits = uMin * UNIFORM_UNITS; // exact: a power of two
  let known: Set<number> | null = null;
  const words = indexWords(vocab);
  for (let i = 0; i < vocab; i++) {
    const a = mix32(key ^ words[i]);
    // u < ((a >>> 5) + 1) / 2^27: at or below uMin there, the token is ruled out (drawWhole).
    if ((a >>> 5) + 1 <= uMinUnits || uniformFrom(a) <= uMin) continue;
    known ??= new Set(ids.subarray(offset, offset + count));
    if (known.has(i)) continue;
    const score = (row[rowOffset + i] - max) / t + gumbelAt(key, i);
    if (score > bestScore) {
      bestScore = score;
      best = i;
    }
  }
  return best;
}

function hasTopK(params: SamplingParams, vocab: number): boolean {
  return params.topK !== undefined && params.topK > 0 && params.topK < vocab;
}

/**
 * Whether sampling draws from the whole vocabulary (top-p 1, no top-k below it): then the
 * sampled distribution is softmax(logits / T) row by row, which a runtime can compute
 * (LayerShard.distributions) in place of sampledDistribution.
 */
export function samplesWholeRow(params: SamplingParams, vocab: number): boolean {
  return params.temperature > 0 && params.topP >= 1 && !hasTopK(params, vocab);
}

/**
 * The tokens chooseToken can draw at temperature > 0: the top-k (if set), then the nucleus of
 * top-p over what top-k left (renormalised), as Hugging Face's warpers chain them.
 */
export function supportOf(
  logits: Float32Array, // [.., vocab] rows; one row is read
  offset: number,
  vocab: number,
  params: SamplingParams,
): number[] {
  const t = params.temperature;
  const max = logits[offset + argmax(logits, offset, vocab)];
  const allowed = hasTopK(params, vocab)
    ? topK(logits, params.topK!, offset, vocab)
    : Array.from({ length: vocab }, (_, i) => i);
  if (params.topP >= 1) return allowed;
  const probs = new Float64Array(vocab); // [vocab] unnormalized, 0 outside top-k
  let total = 0;
  for (const i of allowed) {
    probs[i] = Math.exp((logits[offset + i] - max) / t);
    total += probs[i];
  }
  return nucleusOf(probs, params.topP * total).filter((i) => probs[i] > 0);
}

/**
 * The distribution chooseToken draws from at temperature > 0, as probabilities [vocab]:
 * softmax(logits / T) over supportOf, 0 elsewhere. Distribution-mode acceptance compares the
 * target's and the draft's rows of this.
 */
export function sampledDistribution(
  logits: Float32Array, // [.., vocab] rows; one row is read
  offset: number,
  vocab: number,
  params: SamplingParams,
): Float64Array /* [vocab] */ {
  const t = params.temperature;
  const max = logits[offset + argmax(logits, offset, vocab)];
  const out = new Float64Array(vocab);
  let total = 0;
  if (params.topP >= 1 && !hasTopK(params, vocab)) {
    // The whole row (the common case): supportOf would list every token.
    for (let i = 0; i < vocab; i++) {
      out[i] = Math.exp((logits[offset + i] - max) / t);
      total += out[i];
    }
    for (let i = 0; i < vocab; i++) out[i] /= total;
    return out;
  }
  for (const i of supportOf(logits, offset, vocab, params)) {
    out[i] = Math.exp((logits[offset + i] - max) / t);
    total += out[i];
  }
  for (let i = 0; i < vocab; i++) out[i] /= total;
  return out;
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
