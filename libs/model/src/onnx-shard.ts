// A LayerShard running its layer range as one ONNX Runtime session. Per call it feeds the
// cached K/V rows as zero-copy views of the cache buffers, and appends the new rows the graph
// returns. A draft's shard (opened with `proposals`) also answers TreeBatch.proposals from
// its graph's TopK / ReduceLogSumExp outputs, fetching the full logits only when asked. Every
// last stage (a target's or a draft's) also holds a second, weightless session, the softmax
// graph behind `distributions` (onnx-graph.ts buildSoftmaxGraph).
import { Checkpoint } from './checkpoint.js';
import type { LlamaConfig } from './config.js';
import { ModelError } from './errors.js';
import { defaultCacheDir, ensureGraph } from './graph-cache.js';
import { buildSoftmaxGraph } from './onnx-graph.js';
import {
  resolveExecutionProvider,
  RuntimeSession,
  type Feed,
  type OutputArray,
} from './onnx-runtime.js';
import type {
  LayerShard,
  ModelInfo,
  OpenShardOptions,
  ProposalRequest,
  RowDistributions,
  ShardOutput,
} from './shard.js';
import { resolveRange, CachedShard, type ComputeRequest, type JoinMode } from './cached-shard.js';
import { MASK_HIDDEN } from './kv-cache.js';

export interface OnnxShardOptions extends OpenShardOptions {
  intraOpThreads?: number; // runtime threads per session (default: all cores)
  /**
   * How forwardMany joins several sequences in one call: 'padded' (default), one sequence per
   * entry of the graph's batch dimension, each over its own past; 'ragged', all rows as one
   * sequence over the gathered caches with block-diagonal masks (cached-shard.ts). See
   * computeMany for the measurement that chose the default.
   */
  join?: 'padded' | 'ragged';
}

export class OnnxShard extends CachedShard implements LayerShard {
  /** Whether opening built the graph (false: reused from the cache). */
  readonly graphBuilt: boolean;
  /** Tensor bytes read from the checkpoint while opening (0 when the graph came from the cache). */
  readonly checkpointBytesRead: number;
  private readonly kvOutputs: string[]; // ['present_kv'] (onnx-graph.ts), none without layers
  /** The graph has the proposal outputs (OpenShardOptions.proposals, last stage only). */
  readonly proposals: boolean;
  /** How forwardMany joins sequences (OnnxShardOptions.join); may be switched between calls. */
  join: 'padded' | 'ragged';

  private constructor(
    info: ModelInfo,
    config: LlamaConfig,
    range: { layerStart: number; layerEnd: number },
    maxKvBytes: number | undefined,
    private readonly session: RuntimeSession,
    /** The last stage's sampled distributions (buildSoftmaxGraph); null elsewhere. */
    private readonly softmax: RuntimeSession | null,
    private readonly graphWeightBytes: number,
    graphBuilt: boolean,
    checkpointBytesRead: number,
    proposals: boolean,
    join: 'padded' | 'ragged',
  ) {
    super(info, config, range.layerStart, range.layerEnd, maxKvBytes);
    this.join = join;
    this.graphBuilt = graphBuilt;
    this.checkpointBytesRead = checkpointBytesRead;
    this.proposals = proposals;
    this.kvOutputs = range.layerEnd > range.layerStart ? ['present_kv'] : [];
  }

  static async open(opts: OnnxShardOptions): Promise<OnnxShard> {
    const provider = resolveExecutionProvider(opts.executionProvider);
    if (opts.maxKvBytes !== undefined && !(opts.maxKvBytes >= 0)) {
      throw new ModelError(
        'KV_LIMIT',
        `maxKvBytes must be a non-negative number, got ${opts.maxKvBytes}`,
      );
    }
    const ckpt = await Checkpoint.open(opts.checkpointDir);
    try {
      const range = resolveRange(ckpt.config, opts.layerStart, opts.layerEnd);
      const cacheDir = opts.cacheDir ?? (await defaultCacheDir());
      const proposals = (opts.proposals ?? false) && range.layerEnd === ckpt.config.numLayers;
      const graph = await ensureGraph(ckpt, range.layerStart, range.layerEnd, cacheDir, {
        proposals,
      });
      const session = await RuntimeSession.create(graph.modelPath, {
        provider,
        intraOpThreads: opts.intraOpThreads,
      });
      const softmax =
        range.layerEnd === ckpt.config.numLayers
          ? await RuntimeSession.create(buildSoftmaxGraph(), {
              provider,
              intraOpThreads: opts.intraOpThreads,
            })
          : null;
      return new OnnxShard(
        ckpt.info,
        ckpt.config,
        range,
        opts.maxKvBytes,
        session,
        softmax,
        graph.weightBytes,
        graph.built,
        ckpt.bytesRead(),
        proposals,
        opts.join ?? 'padded',
      );
    } finally {
      await ckpt.close();
    }
  }

  protected async compute(req: ComputeRequest): Promise<ShardOutput> {
    const { batch, kv, capacity, maskCache, maskNew } = req;
    const n = batch.nodeIds.length;
    // One batch entry; the cache buffers go in as they are (zero-copy), free slots masked.
    const feeds = this.feeds(1, n, capacity, { ...batch, maskCache, maskNew }, kv);
    const fetch = this.isLast ? this.lastStageFetch(feeds, batch.proposals) : ['hidden_out'];
    const { outputs: out, runMs } = await this.session.runTimed(feeds, [
      ...fetch,
      ...this.kvOutputs,
    ]);
    const t = performance.now();
    this.writePresent(out, 1, n, [req]);
    const computeMs = runMs + (performance.now() - t);
    if (!this.isLast) return { hidden: f32(out.hidden_out), computeMs };
    const result: ShardOutput = { computeMs };
    if (out.logits) result.logits = f32(out.logits);
    if (out.top_ids) {
      result.top = {
        k: batch.proposals!.k,
        ids: out.top_ids as Int32Array,
        logits: f32(out.top_logits),
        lse: f32(out.lse),
      };
    }
    return result;
  }

  /** LayerShard.distributions: one call of the softmax graph over the rows. */
  async distributions(
    logits: Float32Array, // [n, vocab]
    scales: Float32Array, // [n]
  ): Promise<RowDistributions> {
    const vocab = this.info.vocabSize;
    const n = scales.length;
    if (!this.softmax || logits.length !== n * vocab) {
      throw new ModelError(
        'BATCH_INVALID',
        this.softmax
          ? `distributions: ${logits.length} logits for ${n} rows of ${vocab}`
          : 'distributions: only a last stage computes them',
      );
    }
    const { outputs, runMs } = await this.softmax.runTimed(
      {
        logits: { type: 'float32', data: logits, dims: [n, vocab] },
        scales: { type: 'float32', data: scales, dims: [n, 1] },
      },
      ['probs'],
    );
    return { probs: f32(outputs.probs), runMs };
  }

  protected override get joinMode(): JoinMode {
    return this.join;
  }

  /**
   * Several sequences in one call, each one entry of the graph's batch dimension b: its rows
   * padded to the longest batch's n, its cache's used rows copied into slots [0, past) of its
   * entry of the past (padded to the longest past), its masks as alone.
   *
   *   past_key_j [b, kvHeads, P, headDim]:  entry k = sequence k's past_k rows, then hidden
   *   mask_cache [b, n, P], mask_new [b, n, n]: entry k = sequence k's own masks; padded rows
   *                                              see only themselves, and no row sees them
   *
   * Against the ragged join (all rows one sequence over all the caches, block-diagonal masks)
   * the attention is b x n x P instead of (b n) x (b P): each row scores only its own past.
   *
   * Measured and not kept: a split layout that copies nothing (all rows in one entry, each
   * sequence's cache buffers fed as they are, one Attention node per sequence, a graph per
   * sequence count). bench:model's joint table, middle stage, CPU per call against this one:
   * 1.53x / 1.51x / 1.29x at past 256 for 2 / 4 / 8 sequences of 1 row (its inputs and nodes
   * per sequence cost more than the copies save), 0.93x / 0.88x at past 768 for 4 / 8
   * (bench/results/model-joint-split-experiment.json).
   */
  protected override async computeMany(reqs: readonly ComputeRequest[]): Promise<ShardOutput[]> {
    const c = this.config;
    const B = reqs.length;
    const H = c.hiddenSize;
    const kvH = c.numKvHeads;
    const hd = c.headDim;
    const layers = this.layerEnd - this.layerStart;
    let N = 1;
    let P = 1; // a zero-slot past is avoided: one hidden slot
    for (const r of reqs) {
      N = Math.max(N, r.batch.nodeIds.length);
      P = Math.max(P, r.past);
    }
    const positions = new Int32Array(B * N);
    const maskCache = new Float32Array(B * N * P).fill(MASK_HIDDEN);
    const maskNew = new Float32Array(B * N * N).fill(MASK_HIDDEN);
    const tokens = this.isFirst ? new Int32Array(B * N) : undefined;
    const hidden = this.isFirst ? undefined : new Float32Array(B * N * H);
    const floats = B * kvH * P * hd;
    const scratch = this.jointScratch.take(floats);
    try {
      reqs.forEach((r, k) => {
        const n = r.batch.nodeIds.length;
        const { past, capacity } = r;
        for (let i = 0; i < N; i++) {
          const row = k * N + i;
          if (i < n) {
            maskCache.set(r.maskCache.subarray(i * capacity, i * capacity + past), row * P);
            maskNew.set(r.maskNew.subarray(i * n, (i + 1) * n), row * N);
          } else {
            maskNew[row * N + i] = 0; // a padded row sees itself only
          }
        }
        positions.set(r.batch.positions, k * N);
        if (tokens) tokens.set(r.batch.tokens!, k * N);
        if (hidden) hidden.set(r.batch.hidden!, k * N * H);
        if (past === 0) return;
        for (let l = 0; l < layers; l++) {
          const keys = r.kv.keys[l];
          const values = r.kv.values[l];
          for (let h = 0; h < kvH; h++) {
            const from = h * capacity * hd;
            const to = (k * kvH + h) * P * hd;
            scratch.keys[l].set(keys.subarray(from, from + past * hd), to);
            scratch.values[l].set(values.subarray(from, from + past * hd), to);
          }
        }
      });
      const view = (buf: Float32Array) => buf.subarray(0, floats);
      const feeds = this.feeds(
        B,
        N,
        P,
        { positions, tokens, hidden, maskCache, maskNew },
        { keys: scratch.keys.map(view), values: scratch.values.map(view) },
      );
      const fetch = this.isLast ? this.lastStageFetch(feeds, undefined) : ['hidden_out'];
      const { outputs: out, runMs } = await this.session.runTimed(feeds, [
        ...fetch,
        ...this.kvOutputs,
      ]);
      const t = performance.now();
      this.writePresent(out, B, N, reqs);
      const whole = f32(this.isLast ? out.logits : out.hidden_out);
      const width = this.isLast ? this.info.vocabSize : H;
      const ms = runMs + (performance.now() - t);
      const rows = reqs.reduce((sum, r) => sum + r.batch.nodeIds.length, 0);
      return reqs.map((r, k) => {
        const n = r.batch.nodeIds.length;
        const part = whole.subarray(k * N * width, (k * N + n) * width);
        const computeMs = (ms * n) / rows;
        return this.isLast ? { logits: part, computeMs } : { hidden: part, computeMs };
      });
    } finally {
      scratch.release();
    }
  }

  /**
   * The graph's inputs for B entries of N rows over P cache slots (onnx-graph.ts): positions,
   * tokens or hidden states and masks laid out [B, N, ...], and each layer's past as
   * [B, kvHeads, P, headDim].
   */
  private feeds(
    B: number,
    N: number,
    P: number,
    rows: {
      positions: Int32Array;
      tokens?: Int32Array;
      hidden?: Float32Array;
      maskCache: Float32Array;
      maskNew: Float32Array;
    },
    past: { keys: Float32Array[]; values: Float32Array[] },
  ): Record<string, Feed> {
    const c = this.config;
    const feeds: Record<string, Feed> = {
      position_ids: { type: 'int32', data: rows.positions, dims: [B, N] },
      mask_cache: { type: 'float32', data: rows.maskCache, dims: [B, N, P] },
      mask_new: { type: 'float32', data: rows.maskNew, dims: [B, N, N] },
    };
    if (this.isFirst) feeds.input_ids = { type: 'int32', data: rows.tokens!, dims: [B, N] };
    else feeds.hidden_in = { type: 'float32', data: rows.hidden!, dims: [B, N, c.hiddenSize] };
    const dims = [B, c.numKvHeads, P, c.headDim];
    for (let j = 0; j < past.keys.length; j++) {
      feeds[`past_key_${j}`] = { type: 'float32', data: past.keys[j], dims };
      feeds[`past_value_${j}`] = { type: 'float32', data: past.values[j], dims };
    }
    return feeds;
  }

  /**
   * Hands each entry's new K/V rows to its cache: present_kv is [2 * layers * B, N, kvDim],
   * layer j's keys for every entry, then its values; entry k's first n rows are its own.
   * Views, not copies.
   */
  private writePresent(
    out: Record<string, OutputArray>,
    B: number,
    N: number,
    reqs: readonly ComputeRequest[],
  ): void {
    const layers = this.layerEnd - this.layerStart;
    if (layers === 0) return;
    const present = f32(out.present_kv);
    const rowFloats = this.config.numKvHeads * this.config.headDim;
    const block = N * rowFloats;
    reqs.forEach((r, k) => {
      const len = r.batch.nodeIds.length * rowFloats;
      for (let j = 0; j < layers; j++) {
        const ka = (2 * j * B + k) * block;
        const va = ((2 * j + 1) * B + k) * block;
        r.kv.writeRows(j, r.past, present.subarray(ka, ka + len), present.subarray(va, va + len));
      }
    });
  }

  /**
   * The last stage's outputs to fetch, feeding the proposal inputs where the graph has them
   * (they must be fed even when no proposals are asked for: then k = 1 and one scale, and only
   * the logits are fetched).
   */
  private lastStageFetch(feeds: Record<string, Feed>, req: ProposalRequest | undefined): string[] {
    if (!this.proposals) return ['logits'];
    feeds.proposal_k = { type: 'int32', data: Int32Array.of(req?.k ?? 1), dims: [1] };
    const scales = req?.lseScales ?? Float32Array.of(1);
    feeds.lse_scales = { type: 'float32', data: scales, dims: [scales.length] };
    if (!req) return ['logits'];
    const top = ['top_ids', 'top_logits', 'lse'];
    return req.logits ? ['logits', ...top] : top;
  }

  protected weightBytes(): number {
    return this.graphWeightBytes;
  }

  protected async dispose(): Promise<void> {
    await this.softmax?.release();
    await this.session.release();
  }
}

function f32(a: OutputArray): Float32Array {
  return a as Float32Array;
}

/** Opens a stage over `[layerStart, layerEnd)` of the checkpoint, running on ONNX Runtime. */
export function openShard(opts: OnnxShardOptions): Promise<LayerShard> {
  return OnnxShard.open(opts);
}
