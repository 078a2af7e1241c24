// Distribution-lossless acceptance (SamplingParams.acceptance = 'distribution'): the token
// committed at a tree node is distributed exactly as the target's sampled distribution p
// (after temperature, top-k and top-p), whatever the draft proposed, while a drafted child is
// accepted far more often than under the exact rule (which accepts a child only if it is the
// target's own seeded draw).
//
// Algorithm: recursive rejection sampling (RRS) over the node's candidates drawn from the draft
// WITHOUT replacement, as in Jeon et al., "Recursive Speculative Decoding: Accelerating LLM
// Inference via Sampling Without Replacement" (arXiv 2402.14160, 2024); it generalises the
// single-candidate speculative sampling of Leviathan et al. ("Fast Inference from Transformers
// via Speculative Decoding", 2023) and Chen et al. ("Accelerating Large Language Model Decoding
// with Speculative Sampling", 2023), and SpecInfer's multi-step speculative sampling (Miao et
// al., ASPLOS 2024), which draws the candidates WITH replacement.
//
//   q_1 = q (the draft's sampled distribution), p_1 = p. The candidates c_1..c_k are the
//   draft's Gumbel-top-k: a sample without replacement from q, so c_i ~ q_i = q with
//   c_1..c_{i-1} removed, renormalised. For i = 1..k: accept c_i with probability
//   min(1, p_i(c_i) / q_i(c_i)); on rejection p_{i+1} = norm(max(p_i - q_i, 0)). If every
//   candidate is rejected, draw from p_{k+1}. By the speculative-sampling lemma each step
//   outputs a token distributed as p_i given c_1..c_{i-1}, so the output is distributed as p.
//
// Why this and not deterministic top-k candidates (q_i a point mass on the i-th likeliest
// draft token, accepted with the residual's mass p_i(c_i)): that rule is exactly "draw x from
// p and accept the child equal to x", so a node hits with probability p(children), no more
// than the exact rule already reaches with its coupled draw. Drawn candidates are accepted
// with probability 1 - TV(p_i, q_i) each: the first alone accepts whenever the draft is close
// to the target, however wide both are. Without replacement (RRS) rather than with it
// (SpecInfer) because PipeDec's tree holds distinct children per node, and a duplicate
// candidate would waste a tree slot.
//
// Randomness is keyed by (seed, position) with separate salts for the draft's Gumbel-top-k,
// the acceptance uniforms and the final draw, so the same seed, method and width give the
// same tokens. The final draw from p_{k+1} uses the target's own Gumbel noise (chooseToken's),
// so a node without candidates commits exactly chooseToken's token.

import { EngineError } from './errors.js';
import {
  argmax,
  gumbelTopK,
  rowKeyOf,
  sampledDistribution,
  type SamplingParams,
  uniformKeyed,
} from './sampling.js';

/**
 * A sampled distribution over the vocabulary: f64 where JavaScript computed it
 * (sampledDistribution), f32 where the runtime did (LayerShard.distributions).
 */
export type Distribution = Float32Array | Float64Array; // [vocab]

/** Salt of the draft's proposal stream (Gumbel-top-k over q). */
const DRAFT_SALT = 0x4f1bbcdc;
/** Salt of the acceptance uniforms, one per candidate index. */
const ACCEPT_SALT = 0x2545f491;
/** The target's own stream: chooseToken's default salt. */
const TARGET_SALT = 0x632be5ab;

export function isDistribution(params: SamplingParams): boolean {
  return params.acceptance === 'distribution' && params.temperature > 0;
}

/**
 * The draft's proposals for the token at `position` in distribution mode: q (its sampled
 * distribution, with the request's temperature, top-k and top-p) and up to `k` candidates
 * drawn from q without replacement (Gumbel-top-k with the draft's own noise), in draw order.
 */
export function draftProposals(
  logits: Float32Array, // [.., vocab] rows; one row is read
  offset: number,
  vocab: number,
  position: number,
  params: SamplingParams,
  k: number,
): { q: Float64Array /* [vocab] */; tokens: number[] } {
  const q = sampledDistribution(logits, offset, vocab, params);
  return { q, tokens: draftDraws(q, position, params, k) };
}

/** Up to `k` candidates drawn from the draft's q without replacement, in draw order. */
export function draftDraws(
  q: Distribution,
  position: number,
  params: SamplingParams,
  k: number,
): number[] {
  return gumbelTopK(q, rowKeyOf(params.seed, position, DRAFT_SALT), k);
}

/**
 * Recursive rejection sampling (header): the token committed at `position` given the target's
 * sampled distribution p, the draft's q and its candidates in draw order. `residualBias` is
 * for the test that shows the distribution tests can fail: it adds that share of the rejected
 * candidate's mass back to the residual (a planted error); 0 in the product.
 */
export function acceptDistribution(
  p: ArrayLike<number>, // [vocab] target probabilities
  q: ArrayLike<number>, // [vocab] draft probabilities the candidates were drawn from
  candidates: readonly number[],
  seed: number,
  position: number,
  residualBias = 0,
): { token: number; accepted: number /* candidate index, -1 = drawn from the residual */ } {
  const vocab = p.length;
  const r = Float64Array.from(p); // p_i
  const qi = Float64Array.from(q); // q_i
  const ukey = rowKeyOf(seed, position, ACCEPT_SALT);
  for (let i = 0; i < candidates.length; i++) {
    const c = candidates[i];
    if (!(qi[c] > 0)) break; // not a draw from q_i (cannot happen for draftProposals' tokens)
    if (uniformKeyed(ukey, i) * qi[c] < r[c]) return { token: c, accepted: i };
    // Rejected: p_{i+1} = norm(max(p_i - q_i, 0)); q_{i+1} = q_i without c, renormalised.
    const bias = residualBias * r[c];
    let rTotal = 0;
    for (let t = 0; t < vocab; t++) {
      r[t] = Math.max(r[t] - qi[t], 0);
      rTotal += r[t];
    }
    r[c] += bias;
    rTotal += bias;
    if (rTotal > 0) for (let t = 0; t < vocab; t++) r[t] /= rTotal;
    else r.set(p); // p_i = q_i up to rounding: then c_i was accepted with probability 1
    const left = 1 - qi[c];
    qi[c] = 0;
    if (left > 0) for (let t = 0; t < vocab; t++) qi[t] /= left;
  }
  // Every candidate rejected (or none drafted: the token after a tree's leaf): draw from the
  // residual with the target's Gumbel noise, the largest log r_t + g_t (first id on a tie).
  // gumbelTopK with k = 1 is that draw, scoring only the tokens whose noise can still win
  // instead of a hash and two logarithms for each of the vocabulary's tokens.
  const [best] = gumbelTopK(r, rowKeyOf(seed, position, TARGET_SALT), 1);
  return { token: best ?? argmax(Float32Array.from(p), 0, vocab), accepted: -1 };
}

/** What acceptance needs of a tree node (TreeNode has it). */
export interface Verified {
  readonly position: number; // the node's; its verdict is the token at position + 1
  readonly target: number | null; // the target's seeded draw
  readonly targetProbs: Float32Array | null;
  readonly draftQ: Distribution | null;
  readonly candidates: readonly { token: number }[] | null;
}

/**
 * The token committed after a verified node: the target's seeded draw in exact mode (or
 * greedy, or without the target's distribution); else recursive rejection sampling over the
 * node's drafted candidates.
 */
export function committedToken(node: Verified, params: SamplingParams): number {
  if (!isDistribution(params) || node.targetProbs === null) return node.target!;
  if (node.draftQ === null || node.candidates === null || node.candidates.length === 0) {
    return acceptDistribution(
      node.targetProbs,
      node.targetProbs,
      [],
      params.seed,
      node.position + 1,
    ).token;
  }
  return acceptDistribution(
    node.targetProbs,
    node.draftQ,
    node.candidates.map((c) => c.token),
    params.seed,
    node.position + 1,
    residualBiasForTests,
  ).token;
}

/**
 * Refuses a verdict without the target's distributions in distribution mode: a stage that
 * did not send them (an older wire) would silently turn the acceptance into exact's.
 */
export function requireDistributions(
  params: SamplingParams,
  probs: Float32Array | undefined,
): void {
  if (isDistribution(params) && probs === undefined) {
    throw new EngineError(
      'PROTOCOL',
      'distribution acceptance: the last stage sent no sampled distributions with its verdict',
    );
  }
}

let residualBiasForTests = 0;

/**
 * Plants an error in the residual (acceptDistribution's residualBias) for the test that shows
 * the distribution tests can fail. Never set outside that test.
 */
export function plantResidualBiasForTests(bias: number): void {
  residualBiasForTests = bias;
}
