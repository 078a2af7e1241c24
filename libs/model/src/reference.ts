// The reference forward: LlamaForCausalLM in plain TypeScript, one loop per formula, written
// to be obviously correct rather than fast. It pins the ONNX graphs in tests and serves as a
// dependency-free model for engine tests. Same LayerShard interface, same KV cache and mask.
import { Checkpoint } from './checkpoint.js';
import type { LlamaConfig } from './config.js';
import { ropeCosSin, ropeInvFreq } from './rope.js';
import type { LayerShard, OpenShardOptions, ShardOutput } from './shard.js';
import { resolveRange, CachedShard, type ComputeRequest } from './cached-shard.js';
import type { SequenceKv } from './kv-cache.js';
import { EMBED, FINAL_NORM, LM_HEAD, layerTensorNames } from './tensor-names.js';

interface LayerWeights {
  inputNorm: Float32Array; // [hidden]
  q: Float32Array; // [heads * headDim, hidden]
  k: Float32Array; // [kvHeads * headDim, hidden]
  v: Float32Array; // [kvHeads * headDim, hidden]
  o: Float32Array; // [hidden, heads * headDim]
  postNorm: Float32Array; // [hidden]
  gate: Float32Array; // [intermediate, hidden]
  up: Float32Array; // [intermediate, hidden]
  down: Float32Array; // [hidden, intermediate]
}

interface ReferenceWeights {
  embed: Float32Array | null; // [vocab, hidden] (first stage)
  layers: LayerWeights[];
  finalNorm: Float32Array | null; // [hidden] (last stage)
  lmHead: Float32Array | null; // [vocab, hidden] (last stage; the embedding when tied)
}

export type ReferenceOptions = Pick<
  OpenShardOptions,
  'checkpointDir' | 'layerStart' | 'layerEnd' | 'maxKvBytes'
>;

export class ReferenceModel extends CachedShard implements LayerShard {
  /** Tensor bytes read from the checkpoint while opening (proves other layers stay unread). */
  readonly checkpointBytesRead: number;
  private readonly invFreq: Float32Array; // [headDim / 2]

  private constructor(
    checkpoint: Checkpoint,
    range: { layerStart: number; layerEnd: number },
    maxKvBytes: number | undefined,
    private readonly weights: ReferenceWeights,
  ) {
    super(checkpoint.info, checkpoint.config, range.layerStart, range.layerEnd, maxKvBytes);
    this.invFreq = ropeInvFreq(checkpoint.config);
    this.checkpointBytesRead = checkpoint.bytesRead();
  }

  static async open(opts: ReferenceOptions): Promise<ReferenceModel> {
    const ckpt = await Checkpoint.open(opts.checkpointDir);
    try {
      const range = resolveRange(ckpt.config, opts.layerStart, opts.layerEnd);
      const isFirst = range.layerStart === 0;
      const isLast = range.layerEnd === ckpt.config.numLayers;
      const layers: LayerWeights[] = [];
      for (let l = range.layerStart; l < range.layerEnd; l++) {
        const names = layerTensorNames(l);
        const w = {} as Record<keyof LayerWeights, Float32Array>;
        for (const key of Object.keys(names) as (keyof LayerWeights)[]) {
          w[key] = await ckpt.loadF32(names[key]);
        }
        layers.push(w);
      }
      const tied = ckpt.config.tieWordEmbeddings;
      const embed = isFirst || (isLast && tied) ? await ckpt.loadF32(EMBED) : null;
      const weights: ReferenceWeights = {
        embed: isFirst ? embed : null,
        layers,
        finalNorm: isLast ? await ckpt.loadF32(FINAL_NORM) : null,
        lmHead: isLast ? (tied ? embed : await ckpt.loadF32(LM_HEAD)) : null,
      };
      return new ReferenceModel(ckpt, range, opts.maxKvBytes, weights);
    } finally {
      await ckpt.close();
    }
  }

  protected compute(req: ComputeRequest): Promise<ShardOutput> {
    const { batch, past, capacity, maskCache, maskNew } = req;
    // This shard never joins sequences (its joinMode stays 'none'), so the cache is always the
    // sequence's own, with its element accessors.
    const kv = req.kv as SequenceKv;
    const c: LlamaConfig = this.config;
    const n = batch.nodeIds.length;
    const H = c.hiddenSize;
    const hd = c.headDim;
    const group = c.numHeads / c.numKvHeads;
    // Columns: the cache slots, then this batch's rows (stored at slots past + j).
    const total = capacity + n;
    const slotOfColumn = (col: number) => (col < capacity ? col : past + col - capacity);
    const maskAt = (i: number, col: number) =>
      col < capacity ? maskCache[i * capacity + col] : maskNew[i * n + col - capacity];
    const x = new Float32Array(n * H); // [n, hidden]
    if (this.isFirst) {
      for (let i = 0; i < n; i++) {
        const t = batch.tokens![i];
        x.set(this.weights.embed!.subarray(t * H, (t + 1) * H), i * H);
      }
    } else {
      x.set(batch.hidden!);
    }
    const rope = Array.from(batch.positions, (p) => ropeCosSin(this.invFreq, p));
    const scale = 1 / Math.sqrt(hd);

    this.weights.layers.forEach((w, li) => {
      const xn = rmsNorm(x, w.inputNorm, n, c.rmsNormEps);
      const q = linear(xn, w.q, n, H); // [n, heads * headDim]
      const k = linear(xn, w.k, n, H); // [n, kvHeads * headDim]
      const v = linear(xn, w.v, n, H); // [n, kvHeads * headDim]
      for (let i = 0; i < n; i++) {
        for (let h = 0; h < c.numHeads; h++) applyRope(q, (i * c.numHeads + h) * hd, hd, rope[i]);
        for (let h = 0; h < c.numKvHeads; h++) {
          applyRope(k, (i * c.numKvHeads + h) * hd, hd, rope[i]);
        }
      }
      kv.writeRows(li, past, k, v);

      const attn = new Float32Array(n * c.numHeads * hd); // [n, heads * headDim]
      const scores = new Float64Array(total);
      for (let i = 0; i < n; i++) {
        const maskRow = Float32Array.from({ length: total }, (_, col) => maskAt(i, col));
        for (let h = 0; h < c.numHeads; h++) {
          const kvh = Math.floor(h / group); // repeat_kv: query head h reads kv head h / group
          const qOff = (i * c.numHeads + h) * hd;
          let max = -Infinity;
          for (let col = 0; col < total; col++) {
            if (maskRow[col] !== 0) continue;
            const slot = slotOfColumn(col);
            let dot = 0;
            for (let d = 0; d < hd; d++) dot += q[qOff + d] * kv.keyAt(li, slot, kvh, d);
            scores[col] = dot * scale;
            if (scores[col] > max) max = scores[col];
          }
          let sum = 0;
          for (let col = 0; col < total; col++) {
            if (maskRow[col] !== 0) continue;
            scores[col] = Math.exp(scores[col] - max);
            sum += scores[col];
          }
          for (let col = 0; col < total; col++) {
            if (maskRow[col] !== 0) continue;
            const p = scores[col] / sum;
            const slot = slotOfColumn(col);
            for (let d = 0; d < hd; d++) attn[qOff + d] += p * kv.valueAt(li, slot, kvh, d);
          }
        }
      }
      addInPlace(x, linear(attn, w.o, n, c.numHeads * hd));

      const xn2 = rmsNorm(x, w.postNorm, n, c.rmsNormEps);
      const gate = linear(xn2, w.gate, n, H); // [n, intermediate]
      const up = linear(xn2, w.up, n, H); // [n, intermediate]
      for (let j = 0; j < gate.length; j++) gate[j] = (gate[j] / (1 + Math.exp(-gate[j]))) * up[j];
      addInPlace(x, linear(gate, w.down, n, c.intermediateSize));
    });

    if (!this.isLast) return Promise.resolve({ hidden: x });
    const xf = rmsNorm(x, this.weights.finalNorm!, n, c.rmsNormEps);
    return Promise.resolve({ logits: linear(xf, this.weights.lmHead!, n, H) });
  }

  protected weightBytes(): number {
    const w = this.weights;
    let floats = (w.embed?.length ?? 0) + (w.finalNorm?.length ?? 0);
    if (w.lmHead && w.lmHead !== w.embed) floats += w.lmHead.length;
    for (const l of w.layers)
      for (const key of Object.keys(l) as (keyof LayerWeights)[]) floats += l[key].length;
    return floats * 4;
  }

  protected dispose(): Promise<void> {
    return Promise.resolve();
  }
}

/** RMSNorm as LlamaRMSNorm: x / sqrt(mean(x^2) + eps) * weight, row by row. */
function rmsNorm(
  x: Float32Array, // [n, dim]
  weight: Float32Array, // [dim]
  n: number,
  eps: number,
): Float32Array /* [n, dim] */ {
  const dim = weight.length;
  const out = new Float32Array(n * dim);
  for (let i = 0; i < n; i++) {
    let ss = 0;
    for (let d = 0; d < dim; d++) ss += x[i * dim + d] * x[i * dim + d];
    const r = 1 / Math.sqrt(ss / dim + eps);
    for (let d = 0; d < dim; d++) out[i * dim + d] = weight[d] * (x[i * dim + d] * r);
  }
  return out;
}

/** y = x W^T for a torch Linear weight W [out, in]. */
function linear(
  x: Float32Array, // [n, in]
  w: Float32Array, // [out, in]
  n: number,
  inDim: number,
): Float32Array /* [n, out] */ {
  const out = w.length / inDim;
  const y = new Float32Array(n * out);
  for (let i = 0; i < n; i++) {
    for (let o = 0; o < out; o++) {
      let s = 0;
      for (let d = 0; d < inDim; d++) s += x[i * inDim + d] * w[o * inDim + d];
      y[i * out + o] = s;
    }
  }
  return y;
}

/** x * cos + rotate_half(x) * sin on one head, with rotate_half(x) = [-x2, x1]. */
function applyRope(
  t: Float32Array,
  offset: number,
  headDim: number,
  { cos, sin }: { cos: Float32Array; sin: Float32Array }, // each [headDim]
): void {
  const half = headDim / 2;
  for (let d = 0; d < half; d++) {
    const x1 = t[offset + d];
    const x2 = t[offset + d + half];
    t[offset + d] = x1 * cos[d] - x2 * sin[d];
    t[offset + d + half] = x2 * cos[d + half] + x1 * sin[d + half];
  }
}

function addInPlace(a: Float32Array, b: Float32Array): void {
  for (let i = 0; i < a.length; i++) a[i] += b[i];
}
