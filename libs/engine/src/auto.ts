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
//                                         ^ median lowest: chosen
//
// Policy, per class, in order:
//   1. untried: a candidate with fewer than `minSamples` measurements runs next (each is
//      tried before any is trusted);
//   2. explore: every `exploreEvery`-th choice re-measures the candidate whose last
//      measurement is oldest, so a pipeline that changes (a stage moves to another host, load
//      arrives) is followed; with the defaults that is 1 request in 16;
//   3. fastest: otherwise the lowest median of the last `window` measurements.
// Deterministic: the same sequence of choose/record calls gives the same choices (tests rely
// on it; no clock, no randomness). Output is lossless whatever is chosen: every candidate
// produces exactly the target's tokens.
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
  exploreEvery?: number; // default 16
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

interface Track {
  samples: number[]; // ms per output token, newest last
  lastSeen: number; // choice counter at the newest measurement
}

export class MethodChooser {
  private readonly minSamples: number;
  private readonly window: number;
  private readonly exploreEvery: number;
  private readonly classes = new Map<string, { chosen: number; tracks: Map<string, Track> }>();

  constructor(private readonly opts: MethodChooserOptions) {
    if (opts.candidates.length === 0) throw new Error('MethodChooser needs a candidate');
    this.minSamples = opts.minSamples ?? 2;
    this.window = opts.window ?? 8;
    this.exploreEvery = opts.exploreEvery ?? 16;
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
    if (pool.length > 1 && state.chosen % this.exploreEvery === 0) {
      const stalest = [...pool].sort((a, b) => track(a)!.lastSeen - track(b)!.lastSeen)[0];
      return { ...stalest, reason: 'explore' };
    }
    let best = pool[0];
    for (const c of pool) if (this.median(cls, c)! < this.median(cls, best)!) best = c;
    return { ...best, reason: 'fastest' };
  }

  /** One finished request's decode time per output token with candidate `c`. */
  record(cls: string, c: AutoCandidate, msPerToken: number): void {
    if (!Number.isFinite(msPerToken) || msPerToken <= 0) return;
    const state = this.state(cls);
    const k = key(c);
    const t = state.tracks.get(k) ?? { samples: [], lastSeen: 0 };
    t.samples.push(msPerToken);
    if (t.samples.length > this.window) t.samples.shift();
    t.lastSeen = state.chosen;
    state.tracks.set(k, t);
  }

  /** Median of the kept measurements, undefined before the first. */
  median(cls: string, c: AutoCandidate): number | undefined {
    const s = this.classes.get(cls)?.tracks.get(key(c))?.samples;
    if (!s || s.length === 0) return undefined;
    const sorted = [...s].sort((a, b) => a - b);
    const mid = sorted.length >> 1;
    return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  }

  private state(cls: string) {
    let s = this.classes.get(cls);
    if (!s) this.classes.set(cls, (s = { chosen: 0, tracks: new Map() }));
    return s;
  }
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
