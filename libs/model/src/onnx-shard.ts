// A LayerShard running its layer range as one ONNX Runtime session. Per call it feeds the
// cached K/V rows as zero-copy views of the cache buffers, and appends the new rows the graph
// returns. A draft's shard (opened with `proposals`) also answers TreeBatch.proposals from
// its graph's TopK / ReduceLogSumExp outputs, fetching the full logits only when asked.
import { Checkpoint } from './checkpoint.js';
import type { LlamaConfig } from './config.js';
import { ModelError } from './errors.js';
import { defaultCacheDir, ensureGraph } from './graph-cache.js';
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
  ShardOutput,
} from './shard.js';
import { resolveRange, CachedShard, type ComputeRequest } from './cached-shard.js';

export interface OnnxShardOptions extends OpenShardOptions {
  intraOpThreads?: number; // runtime threads per session (default: all cores)
}

export class OnnxShard extends CachedShard implements LayerShard {
  /** Whether opening built the graph (false: reused from the cache). */
  readonly graphBuilt: boolean;
  /** Tensor bytes read from the checkpoint while opening (0 when the graph came from the cache). */
  readonly checkpointBytesRead: number;
  private readonly kvOutputs: string[]; // ['present_kv'] (onnx-graph.ts), none without layers
  /** The graph has the proposal outputs (OpenShardOptions.proposals, last stage only). */
  readonly proposals: boolean;
  protected override readonly joinsSequences = true;

  private constructor(
    info: ModelInfo,
    config: LlamaConfig,
    range: { layerStart: number; layerEnd: number },
    maxKvBytes: number | undefined,
    private readonly session: RuntimeSession,
    private readonly graphWeightBytes: number,
    graphBuilt: boolean,
    checkpointBytesRead: number,
    proposals: boolean,
  ) {
    super(info, config, range.layerStart, range.layerEnd, maxKvBytes);
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
      return new OnnxShard(
        ckpt.info,
        ckpt.config,
        range,
        opts.maxKvBytes,
        session,
        graph.weightBytes,
        graph.built,
        ckpt.bytesRead(),
        proposals,
      );
    } finally {
      await ckpt.close();
    }
  }

  protected async compute(req: ComputeRequest): Promise<ShardOutput> {
    const { batch, kv, past, capacity, maskCache, maskNew } = req;
    const c = this.config;
    const n = batch.nodeIds.length;
    const feeds: Record<string, Feed> = {
      position_ids: { type: 'int32', data: batch.positions, dims: [n] },
      mask_cache: { type: 'float32', data: maskCache, dims: [n, capacity] },
      mask_new: { type: 'float32', data: maskNew, dims: [n, n] },
    };
    if (this.isFirst) feeds.input_ids = { type: 'int32', data: batch.tokens!, dims: [n] };
    else feeds.hidden_in = { type: 'float32', data: batch.hidden!, dims: [n, c.hiddenSize] };
    // The cache buffers go in as they are (zero-copy); free slots are hidden by the mask.
    for (let j = 0; j < kv.keys.length; j++) {
      feeds[`past_key_${j}`] = {
        type: 'float32',
        data: kv.keys[j],
        dims: [1, c.numKvHeads, capacity, c.headDim],
      };
      feeds[`past_value_${j}`] = {
        type: 'float32',
        data: kv.values[j],
        dims: [1, c.numKvHeads, capacity, c.headDim],
      };
    }
    const fetch = this.isLast ? this.lastStageFetch(feeds, batch.proposals) : ['hidden_out'];
    const { outputs: out, runMs } = await this.session.runTimed(feeds, [
      ...fetch,
      ...this.kvOutputs,
    ]);
    const t = performance.now();
    if (kv.keys.length > 0) {
      // [2 * layers, n, kvDim]: layer j's keys, then its values; views, not copies.
      const present = f32(out.present_kv);
      const block = n * c.numKvHeads * c.headDim;
      for (let j = 0; j < kv.keys.length; j++) {
        const at = 2 * j * block;
        kv.writeRows(
          j,
          past,
          present.subarray(at, at + block),
          present.subarray(at + block, at + 2 * block),
        );
      }
    }
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

  protected dispose(): Promise<void> {
    return this.session.release();
  }
}

function f32(a: OutputArray): Float32Array {
  return a as Float32Array;
}

/** Opens a stage over `[layerStart, layerEnd)` of the checkpoint, running on ONNX Runtime. */
export function openShard(opts: OnnxShardOptions): Promise<LayerShard> {
  return OnnxShard.open(opts);
}
