// `decoding_method: "auto"`: which lossless method (and width) a request decodes with.
//
// The fastest method depends on the pipeline, not on the algorithm alone: on a deployment
// where every stage has its own cores and hops cost milliseconds, PipeDec keeps all stages
// busy and wins; where stage processes share two cores on loopback, the extra rows PipeDec
// computes cost more than the idle stages it fills, and STPP or even PP wins (bench:cluster
// shows both). A cost model of the pipeline predicts this only as well as its calibration, so
// the chooser calibrates on what matters directly: each candidate's decode time per output
// token, measured on this pipeline by the requests it served, kept per request class
// (greedy vs sampled: speculation pays off less when the target's distribution is wide).
//
//   class "greedy":   pp  [6.2 6.3 6.1]   stpp [4.8 4.9 4.7]   pipedec [6.0 6.1 5.9]
//                                         ^ lowest estimate: chosen
//
// Policy, per class, in order:
//   1. untried: a candidate with fewer than `minSamples` measurements runs next (each is
//      tried before any is trusted);
//   2. explore: every `exploreEvery`-th choice re-measures, of the candidates whose estimate
//      is within `exploreWithin` of the fastest one's, the one whose last measurement is
//      oldest, so a pipeline that changes (a stage moves to another host, load arrives) is
//      followed; with the defaults that is 1 request in 16, on a candidate at most 1.5x
//      slower. A far slower candidate is not re-measured while the fastest holds its speed:
//      on npm start's pipeline PipeDec at width 4 sampled at 1.6x PP, and re-measuring it
//      1 request in 16 alone added 3% (1.6^(1/16)) to auto's paired ratio to PP (bench:api
//      (d)), where the target is 5%. When the
//      fastest slows down (the change that makes another method win slows it: longer hops
//      slow PP and STPP most), the others come within the band and are re-measured;
//   3. fastest: otherwise the lowest estimate from the last `window` measurements: their
//      median, for a speculative candidate averaged over the class's recent draft
//      agreements (below). The candidate chosen last time stays unless another's estimate
//      is `switchMargin` (5%) lower: one request's time per token varies by 30% on this
//      host, so a candidate measured a few times would otherwise win now and then by luck
//      (bench:api (d): STPP at width 4, 1.25x slower than width 2, won a few greedy requests
//      of every prompt set that way).
// Deterministic: the same sequence of choose/record calls gives the same choices (tests rely
// on it; no clock, no randomness). Output is lossless whatever is chosen: every candidate
// produces exactly the target's tokens.
//
// Like requests. A speculative method's time per token depends on the request as much as on
// the method: on this pipeline STPP decoded scripture at 2.4-3.3 ms/token and quotes at
// 3.3-5.4, because the draft predicts scripture better. The candidates' medians come from
// different requests (the fixed-method requests feed theirs, auto's own choices feed the
// others), so comparing raw medians compared the requests, not the methods: auto kept STPP at
// width 4 on scripture, 1.40x slower than width 2, because its few samples were easy ones.
// So each speculative measurement comes with the request's draft agreement a (the share of
// committed tokens that were the draft's first proposal, stats.ts; it does not depend on the
// tree's shape), and speculative candidates are compared over the same agreements:
//
//   ln(ms/token) = level(candidate) + slope * a      (one slope, fitted within candidates)
//   level(c)     = ln of the median over c's samples of ms * exp(-slope * a)
//   estimate(c)  = exp(level(c)) * mean over recent agreements r of exp(slope * r)
//
// The recent agreements are those of the class's last `referenceWindow` speculative requests,
// whichever method ran them: what the next request may be. Averaging over them, not taking
// their median, is what a request of unknown difficulty costs on average; a method whose speed
// swings with the draft's luck pays for the swing (at temperature 1 STPP beat PP on scripture
// and lost to it by 1.2x on quotes and code). PP drafts nothing and is compared by its plain
// median. The slope is the pooled within-candidate least-squares slope (each candidate's
// samples about its own mean), so which requests went to which candidate does not bias it; it
// is clamped to <= 0 (better drafts never slow a method down) and taken as 0 while the
// agreements seen spread too little to fit it. One request's agreement over 64 tokens is
// itself noisy, which flattens the fitted slope, so the correction is partial.
import type { Method } from './stats.js';

export type AutoMethod = Exclude<Method, 'ar'>;

export interface AutoCandidate {
  method: AutoMethod;
  /** PipeDec tree width; STPP per-level budget; 1 for pp. */
  width: number;
  /** STPP tree depth; 0 for the others. */
  depth: number;
}

export interface AutoChoice extends AutoCandidate {
  reason: 'fastest' | 'explore' | 'untried';
}

export interface MethodChooserOptions {
  candidates: readonly AutoCandidate[];
  minSamples?: number; // default 2
  window?: number; // measurements kept per candidate and class, default 8
  /** Recent speculative agreements per class that estimates average over, default 16. */
  referenceWindow?: number;
  exploreEvery?: number; // default 16
  /** Only candidates estimated at most this many times the fastest's are explored, default 1.5. */
  exploreWithin?: number;
  /** How much lower (a fraction) an estimate must be to replace the last choice, default 0.05. */
  switchMargin?: number;
}

/** The class a request's measurements are kept under. */
export function requestClass(sampling: { temperature: number }, acceptance = 'exact'): string {
  return sampling.temperature > 0 ? `sampled/${acceptance}` : 'greedy';
}

/**
 * Candidates for a pipeline: PipeDec and STPP at the given width, or at widths 4 and 2 when
 * none is given, and PP. Both widths because neither wins everywhere: on the 4-stage loopback
 * pipeline sharing 2 cores, STPP greedy at width 2 decoded 2.9-4.1 ms/token against 3.8-4.7 at
 * width 4 (bench:api (d)), while deeper, hop-bound pipelines want the wider tree.
 */
export function defaultAutoCandidates(width?: number, stppDepth = 4): AutoCandidate[] {
  const widths = width !== undefined ? [width] : [4, 2];
  const out: AutoCandidate[] = [];
  for (const w of widths) {
    if (w > 1) out.push({ method: 'pipedec', width: w, depth: 0 });
    out.push({ method: 'stpp', width: w, depth: stppDepth });
  }
  out.push({ method: 'pp', width: 1, depth: 0 });
  return out;
}

interface Sample {
  ms: number; // decode time per output token
  /** The request's draft agreement (stats.ts draftAgreement); undefined for PP. */
  agreement?: number;
}

interface Track {
  samples: Sample[]; // newest last
  lastSeen: number; // choice counter at the newest measurement
}

interface ClassState {
  chosen: number;
  tracks: Map<string, Track>;
  agreements: number[]; // the class's recent speculative agreements, newest last
  lastChoice?: string; // key of the last candidate chosen as the fastest
}

/** Below this spread of agreements (sum of squares about the candidates' means) no slope. */
const MIN_AGREEMENT_SPREAD = 0.02;

export class MethodChooser {
  private readonly minSamples: number;
  private readonly window: number;
  private readonly referenceWindow: number;
  private readonly exploreEvery: number;
  private readonly exploreWithin: number;
  private readonly switchMargin: number;
  private readonly classes = new Map<string, ClassState>();

  constructor(private readonly opts: MethodChooserOptions) {
    if (opts.candidates.length === 0) throw new Error('MethodChooser needs a candidate');
    this.minSamples = opts.minSamples ?? 2;
    this.window = opts.window ?? 8;
    this.referenceWindow = opts.referenceWindow ?? 16;
    this.exploreEvery = opts.exploreEvery ?? 16;
    this.exploreWithin = opts.exploreWithin ?? 1.5;
    this.switchMargin = opts.switchMargin ?? 0.05;
  }

  get candidates(): readonly AutoCandidate[] {
    return this.opts.candidates;
  }

  choose(cls: string, allowed: (c: AutoCandidate) => boolean = () => true): AutoChoice {
    const state = this.state(cls);
    state.chosen += 1;
    const pool = this.opts.candidates.filter(allowed);
    if (pool.length === 0) throw new Error('no candidate allowed');
    const track = (c: AutoCandidate) => state.tracks.get(key(c));
    const untried = pool.find((c) => (track(c)?.samples.length ?? 0) < this.minSamples);
    if (untried) return { ...untried, reason: 'untried' };
    const ms = pool.map((c) => this.estimate(cls, c)!);
    let bestMs = Math.min(...ms);
    let best = pool[ms.indexOf(bestMs)];
    const last = pool.findIndex((c) => key(c) === state.lastChoice);
    if (last >= 0 && ms[last] * (1 - this.switchMargin) <= bestMs) {
      [best, bestMs] = [pool[last], ms[last]];
    }
    if (state.chosen % this.exploreEvery === 0) {
      const near = pool.filter((c, i) => c !== best && ms[i] <= bestMs * this.exploreWithin);
      const stalest = near.sort((a, b) => track(a)!.lastSeen - track(b)!.lastSeen)[0];
      if (stalest) return { ...stalest, reason: 'explore' };
    }
    state.lastChoice = key(best);
    return { ...best, reason: 'fastest' };
  }

  /**
   * One finished request's decode time per output token with candidate `c`, and for a
   * speculative one the request's draft agreement (stats.ts draftAgreement).
   */
  record(cls: string, c: AutoCandidate, msPerToken: number, agreement?: number): void {
    if (!Number.isFinite(msPerToken) || msPerToken <= 0) return;
    const state = this.state(cls);
    const k = key(c);
    const t = state.tracks.get(k) ?? { samples: [], lastSeen: 0 };
    const a =
      c.method !== 'pp' && agreement !== undefined && agreement >= 0 ? agreement : undefined;
    t.samples.push(a === undefined ? { ms: msPerToken } : { ms: msPerToken, agreement: a });
    if (t.samples.length > this.window) t.samples.shift();
    t.lastSeen = state.chosen;
    state.tracks.set(k, t);
    if (a !== undefined) {
      state.agreements.push(a);
      if (state.agreements.length > this.referenceWindow) state.agreements.shift();
    }
  }

  /** Median of the kept measurements, as measured (no adjustment), undefined before the first. */
  median(cls: string, c: AutoCandidate): number | undefined {
    const s = this.classes.get(cls)?.tracks.get(key(c))?.samples;
    return s && s.length > 0 ? median(s.map((x) => x.ms)) : undefined;
  }

  /**
   * What the choice compares: the candidate's ms/token averaged over the class's recent draft
   * agreements (header), its plain median for PP or before any agreement is known; undefined
   * before the first measurement.
   */
  estimate(cls: string, c: AutoCandidate): number | undefined {
    const state = this.classes.get(cls);
    const samples = state?.tracks.get(key(c))?.samples;
    if (!state || !samples || samples.length === 0) return undefined;
    if (c.method === 'pp' || state.agreements.length === 0) return median(samples.map((x) => x.ms));
    const slope = this.slope(state);
    const ref = median(state.agreements); // stands for the agreement a sample did not report
    const level = median(samples.map((x) => x.ms * Math.exp(-slope * (x.agreement ?? ref))));
    const spread =
      state.agreements.reduce((sum, r) => sum + Math.exp(slope * r), 0) / state.agreements.length;
    return level * spread;
  }

  /** Every measured candidate's estimate in a class, for whoever asks why it chose. */
  estimates(cls: string): { candidate: AutoCandidate; ms: number }[] {
    const out: { candidate: AutoCandidate; ms: number }[] = [];
    for (const c of this.opts.candidates) {
      const ms = this.estimate(cls, c);
      if (ms !== undefined) out.push({ candidate: c, ms });
    }
    return out;
  }

  /** The median recent agreement and the slope of a class (for reports), undefined before any. */
  adjustment(cls: string): { agreement: number; slope: number } | undefined {
    const state = this.classes.get(cls);
    if (!state || state.agreements.length === 0) return undefined;
    return { agreement: median(state.agreements), slope: this.slope(state) };
  }

  /** Pooled within-candidate least-squares slope of ln(ms/token) on agreement, <= 0. */
  private slope(state: ClassState): number {
    let sxx = 0;
    let sxy = 0;
    for (const t of state.tracks.values()) {
      const xs = t.samples.filter((s) => s.agreement !== undefined);
      if (xs.length < 2) continue;
      const mx = xs.reduce((a, s) => a + s.agreement!, 0) / xs.length;
      const my = xs.reduce((a, s) => a + Math.log(s.ms), 0) / xs.length;
      for (const s of xs) {
        sxx += (s.agreement! - mx) ** 2;
        sxy += (s.agreement! - mx) * (Math.log(s.ms) - my);
      }
    }
    return sxx < MIN_AGREEMENT_SPREAD ? 0 : Math.min(0, sxy / sxx);
  }

  private state(cls: string): ClassState {
    let s = this.classes.get(cls);
    if (!s) this.classes.set(cls, (s = { chosen: 0, tracks: new Map(), agreements: [] }));
    return s;
  }
}

function median(xs: number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function key(c: AutoCandidate): string {
  return `${c.method}/${c.width}/${c.depth}`;
}

/**
 * Decode time per output token of a finished request (the first token, which pays for the
 * prefill, excluded), or undefined when it produced too few tokens to say.
 */
export function decodeMsPerToken(
  stats: { wallMs: number; ttftWallMs: number; outputTokens: number },
  minTokens = 8,
): number | undefined {
  if (stats.outputTokens < minTokens) return undefined;
  return (stats.wallMs - stats.ttftWallMs) / (stats.outputTokens - 1);
}
