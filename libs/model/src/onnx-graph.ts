// Builds the ONNX graph of a layer range in TypeScript (opset 23 plus ONNX Runtime's contrib
// ops, see below) and writes its weights as f32 external data, streamed tensor by tensor from
// the checkpoint so neither the 2 GB protobuf limit nor a whole-stage buffer in memory bites.
//
// The batch dimension b holds one sequence per entry: one request alone is b = 1 (its n rows,
// a tree's rows in any order, are positions of that sequence); several requests in one call
// (OnnxShard.computeMany) are padded to the same n and past, each entry attending only to its
// own past. Every linear layer multiplies by the torch [out, in] weight as stored (transB).
//
// Inputs:  input_ids int32 [b, n] (first stage) | hidden_in f32 [b, n, hidden]
//          position_ids int32 [b, n]
//          mask_cache f32 [b, n, cap], mask_new f32 [b, n, n]: additive attention masks (0
//            visible, -1e9 hidden) over the cache's slots and over the entry's own rows
//          past_key_<j>, past_value_<j> f32 [b, kvHeads, cap, headDim] per held layer j: the
//            cache buffers as they are, free slots included (masked)
// Outputs: logits f32 [b * n, vocab] (last stage) | hidden_out f32 [b, n, hidden]
//          present_kv f32 [2 * layers * b, n, kvHeads * headDim]: the new rows only (keys
//          already rotated; layer j's keys at entries 2j * b + e, its values at
//          (2j + 1) * b + e), which the caller writes into its cache. One output, not two per
//          layer: onnxruntime-node's cost per call grows by ~8 us per output (and ~4 us per
//          input) whatever its size. The batch dimension costs one request nothing
//          (bench:graph v9 against v8: 0.98-1.01x CPU per call, outputs bit-identical).
// With `proposals` (a draft model's last stage), also:
//   inputs  proposal_k int32 [1]: k; lse_scales f32 [s]: multipliers (1 / temperature)
//   outputs top_ids int32 [n, k], top_logits f32 [n, k]: TopK of the logits (descending, ties
//           by lowest id, as the ONNX spec defines TopK); lse f32 [n, s]:
//           ReduceLogSumExp(lse_scales[j] * logits) per row. The draft's caller then reads
//           k + s numbers per row instead of scanning the vocabulary in JavaScript.
//
// The graph is a handful of ops per layer, because at these sizes a CPU forward costs per
// node more than per FLOP: ONNX Runtime's fused contrib ops (domain com.microsoft) do the
// work of many standard ones. SimplifiedLayerNormalization / SkipSimplifiedLayerNormalization
// (RMSNorm, the second one also adding a block's output to the residual stream),
// RotaryEmbedding over query and key heads at once (cos/sin tables for every position below
// max_position_embeddings, written with the weights), QuickGelu(alpha 1) = SiLU.
//
// Attention is one node, ONNX's Attention (opset 23): grouped-query heads, the cache buffers fed
// as they are as its past (BNSH), the new rows' keys and values, and the additive mask
// [b, 1, n, cap + n]. Rows stay [b, n, features] from the first layer to the last, so the
// projections are FusedMatMul (transB, weights as stored) and no Reshape or Transpose sits
// between ops: 13 nodes per layer. This replaced a hand-written attention of ~25 nodes per layer
// (the cache's and the new rows' scores apart, one softmax, split back, with the reshapes and
// transposes around them); at these sizes a node costs more than its arithmetic. Against that
// graph (bench:graph, both alternated in one process; v7, before present_kv): 0.89-0.96x the
// CPU per call with up to 256 cached positions, 0.91-0.97x for a middle stage and for several
// requests batched; but for one new row over a long past it loses (about even at 512, 1.09x at
// 960), because ONNX Runtime's CPU kernel insists on its present outputs and so copies the
// cache into them every call. What is left is mostly the projections reading 28 MB of f32
// weights per step.
//
// Measured and not kept: com.microsoft GroupQueryAttention with past and present sharing the
// cache buffer, which copies nothing (the present outputs pre-allocated as the past inputs'
// own arrays). A middle stage's 4 layers of attention alone, one row: 1.46 ms against this
// op's 0.32 at past 900, 0.24 against 0.12 at past 200: onnxruntime-node copies pre-allocated
// outputs, and the CPU kernel is slower for one row even without them
// (bench/results/attention-gqa-experiment.json).
import { open, type FileHandle } from 'node:fs/promises';
import path from 'node:path';

import onnxProto from 'onnx-proto';

import type { Checkpoint } from './checkpoint.js';
import { ropeTables } from './rope.js';
import { EMBED, FINAL_NORM, LM_HEAD, layerTensorNames } from './tensor-names.js';

const { onnx } = onnxProto;
type INodeProto = onnxProto.onnx.INodeProto;
type ITensorProto = onnxProto.onnx.ITensorProto;
type IValueInfoProto = onnxProto.onnx.IValueInfoProto;
type IAttributeProto = onnxProto.onnx.IAttributeProto;

/** Bumped whenever the graph changes shape or semantics, so cached graphs are rebuilt. */
export const GRAPH_VERSION = 9;
export const OPSET = 23;
/** ONNX Runtime's contrib operator domain (FusedMatMul, fused norms, rotary embedding). */
export const MS_DOMAIN = 'com.microsoft';
export const MODEL_FILE = 'model.onnx';
export const WEIGHTS_FILE = 'weights.bin';

const FLOAT = onnx.TensorProto.DataType.FLOAT;
const INT32 = onnx.TensorProto.DataType.INT32;
const INT64 = onnx.TensorProto.DataType.INT64;
const ALIGN = 64; // external data offsets aligned for the runtime's loads

type Dim = number | string;
type AttrValue = number | number[] | { float: number };

class GraphBuilder {
  readonly nodes: INodeProto[] = [];
  readonly initializers: ITensorProto[] = [];
  readonly inputs: IValueInfoProto[] = [];
  readonly outputs: IValueInfoProto[] = [];
  private counter = 0;

  input(name: string, elemType: number, dims: Dim[]): string {
    this.inputs.push(valueInfo(name, elemType, dims));
    return name;
  }

  output(name: string, elemType: number, dims: Dim[]): void {
    this.outputs.push(valueInfo(name, elemType, dims));
  }

  /** Adds a node; returns its output names (fresh unless `names` gives them). */
  op(
    type: string,
    inputs: string[],
    attrs: Record<string, AttrValue> = {},
    outputs: number | string[] = 1,
    domain = '',
  ): string[] {
    const out =
      typeof outputs === 'number'
        ? Array.from({ length: outputs }, () => `${type.toLowerCase()}_${this.counter++}`)
        : outputs;
    this.nodes.push({
      opType: type,
      domain,
      input: inputs,
      output: out,
      name: `${type}_${this.counter++}`,
      attribute: Object.entries(attrs).map(([name, v]) => attribute(name, v)),
    });
    return out;
  }

  op1(
    type: string,
    inputs: string[],
    attrs: Record<string, AttrValue> = {},
    name?: string,
  ): string {
    return this.op(type, inputs, attrs, name ? [name] : 1)[0];
  }

  int64(values: number[]): string {
    const name = `const_i64_${this.counter++}`;
    const data = new BigInt64Array(values.map((v) => BigInt(v)));
    this.initializers.push({
      name,
      dims: [values.length],
      dataType: INT64,
      rawData: new Uint8Array(data.buffer),
    });
    return name;
  }

  float(values: Float32Array | number[], dims: number[] = []): string {
    const name = `const_f32_${this.counter++}`;
    const data = Float32Array.from(values);
    this.initializers.push({ name, dims, dataType: FLOAT, rawData: new Uint8Array(data.buffer) });
    return name;
  }
}

function valueInfo(name: string, elemType: number, dims: Dim[]): IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        shape: {
          dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })),
        },
      },
    },
  };
}

function attribute(name: string, v: AttrValue): IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof v === 'number') return { name, type: T.INT, i: v };
  if (Array.isArray(v)) return { name, type: T.INTS, ints: v };
  return { name, type: T.FLOAT, f: v.float };
}

/** Appends f32 tensors to the external data file and describes them as initializers. */
class ExternalWeights {
  offset = 0;
  constructor(
    private readonly file: FileHandle,
    private readonly location: string,
  ) {}

  /** One initializer whose data is the concatenation of the given checkpoint tensors. */
  async add(
    ckpt: Checkpoint,
    name: string,
    dims: number[],
    sources: string[],
  ): Promise<ITensorProto> {
    const pad = (ALIGN - (this.offset % ALIGN)) % ALIGN;
    if (pad) await this.write(new Uint8Array(pad));
    const start = this.offset;
    for (const src of sources) {
      for await (const chunk of ckpt.readF32Chunks(src)) {
        await this.write(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      }
    }
    const length = this.offset - start;
    const expected = dims.reduce((a, b) => a * b, 1) * 4;
    if (length !== expected)
      throw new Error(`internal: ${name} wrote ${length} bytes, expected ${expected}`);
    return {
      name,
      dims,
      dataType: FLOAT,
      dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
      externalData: [
        { key: 'location', value: this.location },
        { key: 'offset', value: String(start) },
        { key: 'length', value: String(length) },
      ],
    };
  }

  /** One initializer computed here rather than read from the checkpoint. */
  async addArray(name: string, dims: number[], data: Float32Array): Promise<ITensorProto> {
    const pad = (ALIGN - (this.offset % ALIGN)) % ALIGN;
    if (pad) await this.write(new Uint8Array(pad));
    const start = this.offset;
    await this.write(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    return {
      name,
      dims,
      dataType: FLOAT,
      dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
      externalData: [
        { key: 'location', value: this.location },
        { key: 'offset', value: String(start) },
        { key: 'length', value: String(data.byteLength) },
      ],
    };
  }

  private async write(bytes: Uint8Array): Promise<void> {
    let done = 0;
    while (done < bytes.length) {
      const { bytesWritten } = await this.file.write(
        bytes,
        done,
        bytes.length - done,
        this.offset + done,
      );
      done += bytesWritten;
    }
    this.offset += bytes.length;
  }
}

export interface BuiltGraph {
  weightBytes: number;
}

export interface GraphOptions {
  proposals?: boolean; // last stage only: the TopK / ReduceLogSumExp outputs (header)
}

/**
 * The sampled distributions of a last stage's rows, as a graph of its own (no weights, built in
 * memory): probs = Softmax(logits * scales) over the vocabulary, one multiplier per row
 * (1 / the row's request temperature).
 *
 * Inputs:  logits f32 [n, vocab], scales f32 [n, 1]
 * Outputs: probs f32 [n, vocab]
 *
 * Distribution-mode acceptance (libs/engine acceptance.ts) needs the target's and the draft's
 * whole distributions at temperature T. In JavaScript an exp per vocabulary entry costs about
 * 130 us per row of 4,096 (sampledDistribution); this graph, run after the stage's own, about
 * 20 us per call plus 3-5 us per row (its rows' results agree within 2e-6 relative). It is a
 * separate session because ONNX Runtime computes every output of a graph whatever is fetched:
 * inside the stage's graph the softmax would cost every greedy call too.
 */
export function buildSoftmaxGraph(): Uint8Array {
  const g = new GraphBuilder();
  const logits = g.input('logits', FLOAT, ['n', 'vocab']);
  const scales = g.input('scales', FLOAT, ['n', 1]);
  g.op1('Softmax', [g.op1('Mul', [logits, scales])], { axis: -1 }, 'probs');
  g.output('probs', FLOAT, ['n', 'vocab']);
  const model = onnx.ModelProto.create({
    irVersion: 10,
    producerName: '@pipedec/model',
    producerVersion: String(GRAPH_VERSION),
    opsetImport: [{ domain: '', version: OPSET }],
    graph: {
      name: 'sampled_distributions',
      node: g.nodes,
      initializer: g.initializers,
      input: g.inputs,
      output: g.outputs,
    },
  });
  return onnx.ModelProto.encode(model).finish();
}

/** Writes model.onnx and weights.bin for layers [layerStart, layerEnd) into `outDir`. */
export async function buildStageGraph(
  ckpt: Checkpoint,
  layerStart: number,
  layerEnd: number,
  outDir: string,
  opts: GraphOptions = {},
): Promise<BuiltGraph> {
  const c = ckpt.config;
  const H = c.hiddenSize;
  const hd = c.headDim;
  const qDim = c.numHeads * hd;
  const kvDim = c.numKvHeads * hd;
  const I = c.intermediateSize;
  const isFirst = layerStart === 0;
  const isLast = layerEnd === c.numLayers;
  const g = new GraphBuilder();
  const handle = await open(path.join(outDir, WEIGHTS_FILE), 'w');
  const weights = new ExternalWeights(handle, WEIGHTS_FILE);
  try {
    const external = async (name: string, dims: number[], sources: string[]) => {
      g.initializers.push(await weights.add(ckpt, name, dims, sources));
      return name;
    };

    // Embedding (or incoming hidden states).
    let x: string;
    let embedName: string | null = null;
    if (isFirst) {
      const ids = g.input('input_ids', INT32, ['b', 'n']);
      embedName = await external('embed_tokens', [c.vocabSize, H], [EMBED]);
      x = g.op1('Gather', [embedName, ids], { axis: 0 });
    } else {
      x = g.input('hidden_in', FLOAT, ['b', 'n', H]);
    }
    const positions = g.input('position_ids', INT32, ['b', 'n']);
    const maskCache = g.input('mask_cache', FLOAT, ['b', 'n', 'cap']);
    const maskNew = g.input('mask_new', FLOAT, ['b', 'n', 'n']);

    // Shared by all layers: positions as RotaryEmbedding wants them ([b, n] int64), the rotary
    // tables, and one additive mask over [cache | new] columns, [b, 1, n, cap + n], which the
    // Attention op broadcasts over heads.
    const pos = g.op1('Cast', [positions], { to: INT64 });
    const { cos: cosTable, sin: sinTable } = ropeTables(c);
    const computed = async (name: string, dims: number[], data: Float32Array) => {
      g.initializers.push(await weights.addArray(name, dims, data));
      return name;
    };
    const cosCache = await computed('rope_cos', [c.maxPositions, hd / 2], cosTable);
    const sinCache = await computed('rope_sin', [c.maxPositions, hd / 2], sinTable);
    const mask = g.op1('Unsqueeze', [
      g.op1('Concat', [maskCache, maskNew], { axis: 2 }),
      g.int64([1]),
    ]);

    const ms = (
      type: string,
      inputs: string[],
      attrs: Record<string, AttrValue>,
      outputs: number | string[] = 1,
    ) => g.op(type, inputs, attrs, outputs, MS_DOMAIN);
    const epsilon = { float: c.rmsNormEps };
    // x.W^T over [1, n, in] rows, W as stored ([out, in]).
    const linear = (t: string, w: string) => ms('FusedMatMul', [t, w], { transB: 1 })[0];
    const qkvSplit = g.int64([qDim + kvDim, kvDim]);
    const qkSplit = g.int64([qDim, kvDim]);
    const guSplit = g.int64([I, I]);

    // The residual stream runs through SkipSimplifiedLayerNormalization: one op adds a block's
    // output to the stream and normalises the sum for the next block (output 3 is the sum).
    let pending: string | null = null; // the previous block's output, not yet added to x
    const addAndNorm = (w: string): string => {
      if (pending === null)
        return g.op1('SimplifiedLayerNormalization', [x, w], { axis: -1, epsilon });
      const sum = `resid_${g.nodes.length}`;
      const [normed] = ms('SkipSimplifiedLayerNormalization', [x, pending, w], { epsilon }, [
        `norm_${g.nodes.length}`,
        '',
        '',
        sum,
      ]);
      x = sum;
      pending = null;
      return normed;
    };

    const presentKv: string[] = []; // per layer its new rows' keys and values, [b, n, kvDim]
    for (let l = layerStart; l < layerEnd; l++) {
      const j = l - layerStart;
      const names = layerTensorNames(l);
      const pastK = g.input(`past_key_${j}`, FLOAT, ['b', c.numKvHeads, 'cap', hd]);
      const pastV = g.input(`past_value_${j}`, FLOAT, ['b', c.numKvHeads, 'cap', hd]);
      const wIn = await external(`l${l}.input_norm`, [H], [names.inputNorm]);
      const wQkv = await external(`l${l}.qkv`, [qDim + 2 * kvDim, H], [names.q, names.k, names.v]);
      const wO = await external(`l${l}.o`, [H, qDim], [names.o]);
      const wPost = await external(`l${l}.post_norm`, [H], [names.postNorm]);
      const wGu = await external(`l${l}.gate_up`, [2 * I, H], [names.gate, names.up]);
      const wDown = await external(`l${l}.down`, [H, I], [names.down]);

      // [b, n, q | k | v]: the layout RotaryEmbedding and Attention read.
      const [qk, v] = g.op('Split', [linear(addAndNorm(wIn), wQkv), qkvSplit], { axis: 2 }, 2);
      // One RotaryEmbedding over the query and key heads together.
      const qkRot = ms('RotaryEmbedding', [qk, pos, cosCache, sinCache], {
        num_heads: c.numHeads + c.numKvHeads,
      })[0]; // [b, n, (heads + kvHeads) * hd]
      const [q, k] = g.op('Split', [qkRot, qkSplit], { axis: 2 }, 2);
      presentKv.push(k, v);
      // Grouped-query attention over the cache as it is (free slots masked) and the new rows.
      // The op's present outputs (cache and new rows concatenated) are required by ONNX
      // Runtime's CPU kernel when a past is given; nothing reads them.
      const [ctx] = g.op(
        'Attention',
        [q, k, v, mask, pastK, pastV],
        { q_num_heads: c.numHeads, kv_num_heads: c.numKvHeads },
        [`attn_${j}`, `attn_cat_key_${j}`, `attn_cat_value_${j}`],
      ); // [b, n, heads * hd]
      pending = linear(ctx, wO);

      const [gate, up] = g.op('Split', [linear(addAndNorm(wPost), wGu), guSplit], { axis: 2 }, 2);
      // SiLU(gate) * up; QuickGelu with alpha 1 is x * sigmoid(x).
      const act = g.op1('Mul', [ms('QuickGelu', [gate], { alpha: { float: 1 } })[0], up]);
      pending = linear(act, wDown);
    }

    // One output for every layer's new K/V rows: each output costs onnxruntime-node ~8 us per
    // call to hand back, and the concatenation copies only the n new rows.
    if (presentKv.length > 0) {
      g.op1('Concat', presentKv, { axis: 0 }, 'present_kv');
      g.output('present_kv', FLOAT, ['kv_rows', 'n', kvDim]);
    }

    if (isLast) {
      const wNorm = await external('final_norm', [H], [FINAL_NORM]);
      const head = c.tieWordEmbeddings
        ? (embedName ?? (await external('embed_tokens', [c.vocabSize, H], [EMBED])))
        : await external('lm_head', [c.vocabSize, H], [LM_HEAD]);
      const rows = g.op1('Reshape', [addAndNorm(wNorm), g.int64([-1, H])]);
      const logits = g.op1('Gemm', [rows, head], { transB: 1 }, 'logits');
      g.output('logits', FLOAT, ['bn', c.vocabSize]);
      if (opts.proposals) {
        const k = g.op1('Cast', [g.input('proposal_k', INT32, [1])], { to: INT64 });
        const scales = g.input('lse_scales', FLOAT, ['s']);
        const [topValues, topIds] = g.op('TopK', [logits, k], { axis: -1, largest: 1, sorted: 1 }, [
          'top_logits',
          'top_ids_i64',
        ]);
        g.op1('Cast', [topIds], { to: INT32 }, 'top_ids');
        g.output('top_ids', INT32, ['bn', 'k']);
        g.output(topValues, FLOAT, ['bn', 'k']);
        // [n, 1, vocab] * [s, 1] -> [n, s, vocab], reduced over the vocabulary.
        const scaled = g.op1('Mul', [
          g.op1('Unsqueeze', [logits, g.int64([1])]),
          g.op1('Unsqueeze', [scales, g.int64([1])]),
        ]);
        g.op1('ReduceLogSumExp', [scaled, g.int64([2])], { keepdims: 0 }, 'lse');
        g.output('lse', FLOAT, ['bn', 's']);
      }
    } else {
      g.op1(
        pending === null ? 'Identity' : 'Add',
        pending === null ? [x] : [x, pending],
        {},
        'hidden_out',
      );
      g.output('hidden_out', FLOAT, ['b', 'n', H]);
    }
  } finally {
    await handle.close();
  }

  const model = onnx.ModelProto.create({
    irVersion: 10,
    producerName: '@pipedec/model',
    producerVersion: String(GRAPH_VERSION),
    opsetImport: [
      { domain: '', version: OPSET },
      { domain: MS_DOMAIN, version: 1 },
    ],
    graph: {
      name: `llama_layers_${layerStart}_${layerEnd}`,
      node: g.nodes,
      initializer: g.initializers,
      input: g.inputs,
      output: g.outputs,
    },
  });
  const bytes = onnx.ModelProto.encode(model).finish();
  const modelFile = await open(path.join(outDir, MODEL_FILE), 'w');
  try {
    await modelFile.writeFile(bytes);
  } finally {
    await modelFile.close();
  }
  return { weightBytes: weights.offset };
}
