// The draft model next to the controller: a whole small model with its own KV cache, which
// mirrors the tree exactly like the stages do (rows of pruned nodes are dropped, rows of
// committed nodes become its committed prefix). It proposes children for tree nodes.
//
// Where the draft's shard computes them in its graph (OnnxShard opened with `proposals`), the
// top-k and log-sum-exps come from the runtime (TreeBatch.proposals) and no JavaScript scans
// the logits: greedy needs only the likeliest tokens; exact sampling draws among them and
// checks the rest of the row by its noise alone (chooseTokenFromTop), so the proposals are
// the same as from the full logits. Distribution-mode acceptance needs the draft's whole
// distribution q: over the whole vocabulary the runtime computes it from the logits
// (LayerShard.distributions, ~20 us a call plus 3-5 us a row against ~130 us a row here);
// under top-k or top-p, and on any shard without those outputs, JavaScript reads the logits.

import type { ProposalRequest, TopLogits } from '@pipedec/model';
import { type Distribution, draftDraws, draftProposals, isDistribution } from './acceptance.js';
import { EngineError } from './errors.js';
import {
  chooseToken,
  chooseTokenFromTop,
  logSumExp,
  type SamplingParams,
  samplesWholeRow,
  topK,
} from './sampling.js';
import type { StageShard } from './stage.js';
import type { Candidate } from './tree.js';

export interface DraftRow {
  id: number;
  parent: number; // a row the draft holds (tree or committed), or -1
  position: number;
  token: number;
}

/** Fails before decoding if the draft cannot speculate for the target (llama.cpp's check). */
export function checkCompatible(target: StageShard['info'], draft: StageShard['info']): void {
  const problems: string[] = [];
  if (target.vocabSize !== draft.vocabSize) {
    problems.push(`vocabSize target ${target.vocabSize} draft ${draft.vocabSize}`);
  }
  if (target.bosTokenId !== draft.bosTokenId) {
    problems.push(`bosTokenId target ${target.bosTokenId} draft ${draft.bosTokenId}`);
  }
  if (target.eosTokenIds.join(',') !== draft.eosTokenIds.join(',')) {
    problems.push(
      `eosTokenIds target [${target.eosTokenIds.join(', ')}] draft [${draft.eosTokenIds.join(', ')}]`,
    );
  }
  if (problems.length > 0) throw new EngineError('INCOMPATIBLE_MODELS', problems.join('; '));
}

/**
 * What the draft needs from the request it drafts for. RequestRun provides it; the draft does
 * not depend on the run itself (run.ts checks drafts with checkCompatible from here).
 */
export interface DraftHost {
  readonly prompt: readonly number[];
  readonly sampling: SamplingParams;
  readonly request: { readonly requestId: string };
  /**
   * Times a draft call (and counts its positions) so that engine overhead excludes its wall
   * time; `ownMs`, when given, is what the draft itself computed (its wall time can hold other
   * work on the thread: at the head, stage 0's run), and is what the stats report.
   */
  timeDraft<T>(positions: number, work: () => Promise<T>, ownMs?: () => number): Promise<T>;
  timeDraftSync(work: () => void): void;
}

/** The draft's proposals for one node's children. */
export interface Proposal {
  candidates: Candidate[];
  /**
   * [vocab] Distribution mode only: the draft's sampled distribution q the candidates were
   * drawn from (without replacement, in their order); null in exact mode.
   */
  q: Distribution | null;
}

/**
 * How many of the draft's likeliest tokens the graph returns for its seeded draw when sampling
 * exactly (chooseTokenFromTop): a request top_k up to this, or a nucleus complete within
 * them, is drawn from them alone; otherwise the full row is read as well.
 */
export const DRAW_POOL = 64;
/**
 * The same with top-p < 1 and no top_k up to DRAW_POOL: on the demo draft a 0.95 nucleus at
 * T 0.8 often reaches beyond 64 tokens, and a draw whose nucleus is not complete within the
 * pool reads the full row (bench:draft: CPU saved at 16 rows 27% with 64, 45% with 256).
 */
export const NUCLEUS_POOL = 256;

/**
 * Most skipped rows one catch-up call computes: a request that started under load skipped its
 * whole prompt (deferPrompt), and a call of ~900 rows would hold the head's thread, which
 * also runs stage 0 for every other request, for tens of milliseconds.
 */
export const CATCH_UP_CHUNK = 64;

export class DraftRunner {
  private readonly seq: string;
  /** What the graph is asked for; undefined where the full logits are needed. */
  private readonly request: ProposalRequest | undefined;
  /**
   * Committed rows the draft skipped (skip(), deferPrompt()), in order: the tokens PipeDec
   * sent alone while its tree had no layer (width 0 under load), and the prompt of a request
   * that started so. The next propose computes them first.
   */
  private lag: DraftRow[] = [];

  constructor(
    private readonly shard: StageShard,
    private readonly run: DraftHost,
    private readonly branching: number,
    /**
     * Temperature of the draft log-probabilities that rank proposals across the tree (the
     * tree keeps the best cumulative scores). Below 1 it follows the draft's likeliest paths
     * deeper instead of spreading over unlikely siblings. It decides which nodes are
     * speculated, never which token is committed.
     */
    private readonly scoreTemperature = 1,
  ) {
    if (!shard.isFirst || !shard.isLast) {
      throw new EngineError('BAD_REQUEST', 'the draft must be a whole model (first and last)');
    }
    this.seq = run.request.requestId;
    this.request = proposalRequest(run.sampling, branching, scoreTemperature, shard.info.vocabSize);
  }

  /**
   * Runs the prompt through the draft in chunks, committing every row but the last (the first
   * root, committed when its verdict arrives). Returns the proposals for that last row.
   */
  async prefill(chunk: number): Promise<Proposal> {
    const prompt = this.run.prompt;
    let last: Proposal = { candidates: [], q: null };
    for (let s = 0; s < prompt.length; s += chunk) {
      const rows: DraftRow[] = [];
      for (let p = s; p < Math.min(prompt.length, s + chunk); p++) {
        rows.push({ id: p, parent: p === s ? -1 : p - 1, position: p, token: prompt[p] });
      }
      const proposals = await this.propose(rows, true);
      last = proposals[proposals.length - 1];
      const done = rows.filter((r) => r.id < prompt.length - 1).map((r) => r.id);
      if (done.length > 0) this.shard.commit(this.seq, done);
    }
    return last;
  }

  /**
   * Forwards rows through the draft (appending them as tree rows) and proposes children. The
   * top-k and log-softmax count as draft time: on an accelerator they are part of its LM head.
   */
  async propose(rows: DraftRow[], onlyLast = false): Promise<Proposal[]> {
    // Skipped committed rows go first, as a chain from the committed prefix: all but the last
    // CATCH_UP_CHUNK in calls of their own, committed after each (the next chunk then reads
    // them as its committed prefix), the rest in the same call as `rows`; a row that would
    // have read the committed prefix (parent -1) reads the chain's end.
    while (this.lag.length > CATCH_UP_CHUNK) {
      const part = this.lag.splice(0, CATCH_UP_CHUNK);
      this.lag[0] = { ...this.lag[0], parent: -1 };
      await this.run.timeDraft(part.length, async () => {
        await this.forward(part);
        this.shard.commit(
          this.seq,
          part.map((r) => r.id),
        );
      });
    }
    const lag = this.lag;
    this.lag = [];
    const last = lag.length > 0 ? lag[lag.length - 1].id : -1;
    const all =
      lag.length === 0
        ? rows
        : [...lag, ...rows.map((r) => (r.parent === -1 ? { ...r, parent: last } : r))];
    let own = 0;
    return this.run.timeDraft(
      all.length,
      async () => {
        const out = await this.forward(all);
        if (lag.length > 0)
          this.shard.commit(
            this.seq,
            lag.map((r) => r.id),
          );
        const vocab = this.shard.info.vocabSize;
        const sampling = this.run.sampling;
        // Distribution mode over the whole vocabulary, with the graph's top-k: the runtime
        // computes q for the rows that propose (from `first` on), no JavaScript scans the row.
        // Without the runtime's distributions, candidates() reads the logits as before.
        const first = lag.length + (onlyLast ? rows.length - 1 : 0);
        const runtimeQ =
          isDistribution(sampling) &&
          samplesWholeRow(sampling, vocab) &&
          this.shard.distributions !== undefined;
        const dist =
          runtimeQ && out.top && out.logits
            ? await this.shard.distributions!(
                out.logits.subarray(first * vocab),
                new Float32Array(all.length - first).fill(1 / sampling.temperature),
              )
            : null;
        const t = performance.now();
        const proposals = rows.map((r, j) => {
          if (onlyLast && j < rows.length - 1) return { candidates: [], q: null };
          const i = lag.length + j; // the row's index in the call
          if (dist) {
            const q = dist.probs.subarray((i - first) * vocab, (i - first + 1) * vocab);
            return this.candidatesFromDistribution(out.top!, q, i, r.position + 1);
          }
          if (out.top && !isDistribution(sampling)) {
            return this.candidatesFromTop(out.top, out.logits, i, r.position + 1);
          }
          return this.candidates(out.logits!, i * vocab, r.position + 1); // [rows, vocab]
        });
        own =
          out.computeMs === undefined
            ? Number.NaN
            : out.computeMs + (dist?.runMs ?? 0) + performance.now() - t;
        return proposals;
      },
      () => own,
    );
  }

  /** Appends rows to the draft's cache as tree rows, asking the graph for proposals. */
  private forward(rows: readonly DraftRow[]): ReturnType<StageShard['forward']> {
    return this.shard.forward(this.seq, {
      nodeIds: Int32Array.from(rows, (r) => r.id),
      parentIds: Int32Array.from(rows, (r) => r.parent),
      positions: Int32Array.from(rows, (r) => r.position),
      tokens: Int32Array.from(rows, (r) => r.token),
      proposals: this.request,
    });
  }

  /**
   * A committed row the draft never computed (PipeDec sent it alone, its tree 0 wide): the
   * draft computes it, and every other skipped one, at the start of its next propose (in
   * CATCH_UP_CHUNK calls), so a request under load drafts nothing per token yet can widen
   * again.
   */
  skip(row: { id: number; position: number; token: number }): void {
    const prev = this.lag[this.lag.length - 1];
    this.lag.push({
      id: row.id,
      parent: prev ? prev.id : -1,
      position: row.position,
      token: row.token,
    });
  }

  /**
   * Instead of prefill: the prompt's rows but the last (the first root, which the verdicts
   * handle like any root) join the skipped rows. A PipeDec request that starts 0 wide under
   * load may never speculate; if it widens, the draft computes the prompt then, with the
   * tokens skipped since, in CATCH_UP_CHUNK calls.
   */
  deferPrompt(): void {
    const prompt = this.run.prompt;
    for (let p = 0; p < prompt.length - 1; p++) {
      this.skip({ id: p, position: p, token: prompt[p] });
    }
  }

  /** Cache bookkeeping of the draft counts as draft time, like the stages' own. */
  commit(ids: number[]): void {
    if (ids.length > 0) this.run.timeDraftSync(() => this.shard.commit(this.seq, ids));
  }

  prune(keep: ReadonlySet<number>): void {
    this.run.timeDraftSync(() => this.shard.prune(this.seq, keep));
  }

  release(): void {
    this.shard.release(this.seq);
  }

  /**
   * Top-k children by draft log-probability. When sampling, the draft's own draw with the
   * target's Gumbel noise (seed, position) comes first: if the two distributions are close,
   * the target's seeded draw lands on the same token (a coupling, see chooseToken), so that
   * child is the most likely hit. It is scored like the node's best child.
   *
   * In distribution mode the children are k draws from the draft's sampled distribution
   * without replacement (acceptance.ts), in draw order. The scores estimate how likely
   * recursive rejection sampling, which tries them in that order, commits each: the first
   * draw is accepted with probability 1 - TV(p, q), which the draft's top probability
   * understates most where the draft is unsure (firstDrawScore); the i-th later one is scored
   * like the draft's i-th likeliest token.
   */
  private candidates(logits: Float32Array, offset: number, position: number): Proposal {
    const vocab = this.shard.info.vocabSize;
    const t = this.scoreTemperature;
    const lse = logSumExp(logits, offset, vocab, t);
    const logProb = (token: number) => logits[offset + token] / t - lse;
    const best = topK(logits, this.branching, offset, vocab);
    const sampling = this.run.sampling;
    if (sampling.temperature <= 0) {
      return { candidates: best.map((token) => ({ token, logProb: logProb(token) })), q: null };
    }
    if (isDistribution(sampling)) {
      const { q, tokens } = draftProposals(
        logits,
        offset,
        vocab,
        position,
        sampling,
        this.branching,
      );
      return {
        candidates: tokens.map((token, i) => ({
          token,
          logProb: i === 0 ? firstDrawScore(logProb(best[0])) : logProb(best[i]),
        })),
        q,
      };
    }
    const drawn = chooseToken(logits, offset, vocab, position, sampling);
    const rest = best.filter((t) => t !== drawn).slice(0, this.branching - 1);
    return {
      candidates: [
        { token: drawn, logProb: logProb(best[0]) },
        ...rest.map((token) => ({ token, logProb: logProb(token) })),
      ],
      q: null,
    };
  }

  /**
   * candidates() from the graph's top-k of row `row` (greedy and exact sampling): the same
   * children in the same order, their log-probabilities from the graph's log-sum-exp (f32;
   * the JavaScript path sums in f64), and the same seeded draw (chooseTokenFromTop, which
   * reads the full logits only where the top-k is not enough).
   */
  private candidatesFromTop(
    top: TopLogits,
    logits: Float32Array | undefined, // [rows, vocab] when sampling
    row: number,
    position: number,
  ): Proposal {
    const { k, ids } = top;
    const scales = this.request!.lseScales.length;
    const offset = row * k; // [rows, k]
    const scale = 1 / this.scoreTemperature;
    const lseScore = top.lse[row * scales]; // [rows, scales]; scale 0 is the score temperature's
    const logProb = (j: number) => top.logits[offset + j] * scale - lseScore;
    const count = Math.min(this.branching, k);
    const sampling = this.run.sampling;
    const candidates: Candidate[] = [];
    if (sampling.temperature <= 0) {
      for (let j = 0; j < count; j++) {
        candidates.push({ token: ids[offset + j], logProb: logProb(j) });
      }
      return { candidates, q: null };
    }
    const vocab = this.shard.info.vocabSize;
    const drawn = chooseTokenFromTop(
      { ids, logits: top.logits, offset, count: k, logMass: top.lse[row * scales + 1] },
      logits!,
      row * vocab,
      vocab,
      position,
      sampling,
    );
    candidates.push({ token: drawn, logProb: logProb(0) });
    for (let j = 0; j < k && candidates.length < count; j++) {
      if (ids[offset + j] !== drawn) {
        candidates.push({ token: ids[offset + j], logProb: logProb(j) });
      }
    }
    return { candidates, q: null };
  }

  /**
   * candidates() in distribution mode from the graph's top-k and the runtime's q: the same
   * draws from q in the same order, scored from the graph's log-sum-exp at the score
   * temperature (f32; the JavaScript path sums in f64).
   */
  private candidatesFromDistribution(
    top: TopLogits,
    q: Distribution, // [vocab]
    row: number,
    position: number,
  ): Proposal {
    const scales = this.request!.lseScales.length;
    const offset = row * top.k; // [rows, k]
    const lseScore = top.lse[row * scales]; // [rows, scales]; scale 0 is the score temperature's
    const logProb = (j: number) => top.logits[offset + j] / this.scoreTemperature - lseScore;
    const tokens = draftDraws(q, position, this.run.sampling, this.branching);
    return {
      candidates: tokens.map((token, i) => ({
        token,
        logProb: i === 0 ? firstDrawScore(logProb(0)) : logProb(Math.min(i, top.k - 1)),
      })),
      q,
    };
  }
}

/**
 * What the draft's graph is asked for: the `branching` likeliest tokens when greedy; when
 * sampling exactly, DRAW_POOL of them (NUCLEUS_POOL with top-p, the request's top_k if it is
 * smaller), the log-sum-exp
 * at the request's temperature for its nucleus, and the logits for the tokens beyond them
 * that the draw may still need. Distribution mode needs the whole distribution q: over the
 * whole vocabulary, the `branching` likeliest (for the scores) and the logits the runtime
 * computes q from; under top-k or top-p nothing (undefined), the full logits.
 */
export function proposalRequest(
  sampling: SamplingParams,
  branching: number,
  scoreTemperature: number,
  vocab: number,
): ProposalRequest | undefined {
  const score = 1 / scoreTemperature;
  if (isDistribution(sampling)) {
    // The whole q: the runtime computes it from the logits (LayerShard.distributions) where
    // the row is whole; under top-k or top-p, JavaScript reads the logits.
    if (!samplesWholeRow(sampling, vocab)) return undefined;
    return { k: Math.min(branching, vocab), lseScales: Float32Array.of(score), logits: true };
  }
  if (sampling.temperature <= 0) {
    return { k: Math.min(branching, vocab), lseScales: Float32Array.of(score), logits: false };
  }
  const topK = sampling.topK ?? 0;
  const pool = topK > 0 && topK <= DRAW_POOL ? topK : sampling.topP < 1 ? NUCLEUS_POOL : DRAW_POOL;
  return {
    k: Math.min(vocab, Math.max(branching, pool)),
    lseScales: Float32Array.of(score, 1 / sampling.temperature),
    logits: true,
  };
}

/**
 * Distribution mode: the log-score of a node's first drawn child, from the draft's top
 * log-probability. Recursive rejection sampling accepts the first draw c ~ q with probability
 * sum_t min(p(t), q(t)) = 1 - TV(p, q), however wide q is; scoring it like the draft's top
 * token (as greedy trees do) starves the subtrees below unsure nodes, whose first draw is
 * still accepted most of the time. Halfway between the top probability and 1 is what was
 * measured (bench:engine, demo pair, 14 stages, T = 1, 936 verifications): first draws were
 * accepted 0.60 of the time where the draft's top probability was below 0.2, 0.56 at 0.2-0.4,
 * 0.77 at 0.4-0.6, 0.71 at 0.6-0.8 and 0.91 above 0.8. It ranks nodes; it never changes
 * which token is committed.
 *
 * Worked example: top probability 0.2 scores log(0.2 + 0.8 / 2) = log 0.6, where the greedy
 * score log 0.2 would keep only the best of three such paths.
 */
export function firstDrawScore(topLogProb: number): number {
  const top = Math.exp(topLogProb);
  return Math.log(top + (1 - top) / 2);
}
