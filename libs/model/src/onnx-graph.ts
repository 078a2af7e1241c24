// Builds the ONNX graph of a layer range in TypeScript (opset 17, standard ops only) and
// writes its weights as f32 external data, streamed tensor by tensor from the checkpoint so
// neither the 2 GB protobuf limit nor a whole-stage buffer in memory ever bites.
//
// Batch size is always 1 (one sequence per call), so hidden states are 2-D [n, hidden] and
// every linear layer is a Gemm with transB=1 over the torch [out, in] weight, used as stored.
//
// Inputs:  input_ids int32 [n] (first stage) | hidden_in f32 [n, hidden]
//          position_ids int32 [n]
//          mask_cache f32 [n, cap], mask_new f32 [n, n]: additive attention masks (0 visible,
//            -1e9 hidden) over the cache's slots and over the batch's own rows
//          past_key_<j> f32 [kvHeads, headDim, cap], past_value_<j> f32 [kvHeads, cap, headDim]
//            per held layer j: the cache buffers as they are, free slots included (masked)
// Outputs: logits f32 [n, vocab] (last stage) | hidden_out f32 [n, hidden]
//          present_key_<j>, present_value_<j> f32 [n, kvHeads, headDim]: the new rows only
//          (keys already rotated), which the caller writes into its cache.
//
// Attention scores the cache and the new rows separately (q.K_cache, q.K_new) and combines
// them with one softmax written out (shared max, exp, summed denominators), so the cache is
// read in place and nothing of cache size is ever concatenated, sliced or transposed.
import { open, type FileHandle } from 'node:fs/promises';
import path from 'node:path';

import onnxProto from 'onnx-proto';

import type { Checkpoint } from './checkpoint.js';
import { ropeInvFreq } from './rope.js';
import { EMBED, FINAL_NORM, LM_HEAD, layerTensorNames } from './tensor-names.js';

const { onnx } = onnxProto;
type INodeProto = onnxProto.onnx.INodeProto;
type ITensorProto = onnxProto.onnx.ITensorProto;
type IValueInfoProto = onnxProto.onnx.IValueInfoProto;
type IAttributeProto = onnxProto.onnx.IAttributeProto;

/** Bumped whenever the graph changes shape or semantics, so cached graphs are rebuilt. */
export const GRAPH_VERSION = 5;
export const OPSET = 17;
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
  ): string[] {
    const out =
      typeof outputs === 'number'
        ? Array.from({ length: outputs }, () => `${type.toLowerCase()}_${this.counter++}`)
        : outputs;
    this.nodes.push({
      opType: type,
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

/** Writes model.onnx and weights.bin for layers [layerStart, layerEnd) into `outDir`. */
export async function buildStageGraph(
  ckpt: Checkpoint,
  layerStart: number,
  layerEnd: number,
  outDir: string,
): Promise<BuiltGraph> {
  const c = ckpt.config;
  const H = c.hiddenSize;
  const hd = c.headDim;
  const qDim = c.numHeads * hd;
  const kvDim = c.numKvHeads * hd;
  const group = c.numHeads / c.numKvHeads;
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
      const ids = g.input('input_ids', INT32, ['n']);
      embedName = await external('embed_tokens', [c.vocabSize, H], [EMBED]);
      x = g.op1('Gather', [embedName, ids], { axis: 0 });
    } else {
      x = g.input('hidden_in', FLOAT, ['n', H]);
    }
    const positions = g.input('position_ids', INT32, ['n']);
    const maskCache = g.input('mask_cache', FLOAT, ['n', 'cap']);
    const maskNew = g.input('mask_new', FLOAT, ['n', 'n']);

    // Rotary tables shared by all layers: cos [n, 1, hd] and sin with the rotate_half signs
    // folded in, so rope(x) = x * cos + swap_halves(x) * signedSin.
    const posF = g.op1('Cast', [positions], { to: FLOAT });
    const freqs = g.op1('Mul', [
      g.op1('Unsqueeze', [posF, g.int64([1])]),
      g.float(ropeInvFreq(c), [hd / 2]),
    ]);
    const cos = g.op1('Unsqueeze', [
      g.op1('Cos', [g.op1('Concat', [freqs, freqs], { axis: 1 })]),
      g.int64([1]),
    ]);
    const sinHalf = g.op1('Sin', [freqs]);
    const signedSin = g.op1('Unsqueeze', [
      g.op1('Concat', [g.op1('Neg', [sinHalf]), sinHalf], { axis: 1 }),
      g.int64([1]),
    ]);
    const halves = g.int64([hd / 2, hd / 2]);
    const rope = (t: string, out?: string) => {
      const [a, b] = g.op('Split', [t, halves], { axis: 2 }, 2);
      const swapped = g.op1('Concat', [b, a], { axis: 2 });
      return g.op1('Add', [g.op1('Mul', [t, cos]), g.op1('Mul', [swapped, signedSin])], {}, out);
    };
    const eps = g.float([c.rmsNormEps]);
    const rmsNorm = (t: string, w: string) => {
      const ms = g.op1('ReduceMean', [g.op1('Mul', [t, t])], { axes: [-1], keepdims: 1 });
      return g.op1('Mul', [g.op1('Div', [t, g.op1('Sqrt', [g.op1('Add', [ms, eps])])]), w]);
    };
    const linear = (t: string, w: string) => g.op1('Gemm', [t, w], { transB: 1 });
    const scale = g.float([1 / Math.sqrt(hd)]);
    const qkvSplit = g.int64([qDim, kvDim, kvDim]);
    const guSplit = g.int64([I, I]);
    const shapeQ = g.int64([-1, c.numHeads, hd]);
    const shapeKv = g.int64([-1, c.numKvHeads, hd]);
    const shapeQGroups = g.int64([-1, c.numKvHeads, group, hd]);
    const shapeQRows = g.int64([c.numKvHeads, -1, hd]);
    const shapeHeadsRows = g.int64([c.numHeads, -1, 0]); // 0: keep the last dimension
    const shapeKvRows = g.int64([c.numKvHeads, -1, 0]);
    const shapeOutGroups = g.int64([c.numKvHeads, group, -1, hd]);
    const shapeFlat = g.int64([-1, qDim]);
    const lastAxis = g.int64([-1]);

    for (let l = layerStart; l < layerEnd; l++) {
      const j = l - layerStart;
      const names = layerTensorNames(l);
      const pastK = g.input(`past_key_${j}`, FLOAT, [c.numKvHeads, hd, 'cap']);
      const pastV = g.input(`past_value_${j}`, FLOAT, [c.numKvHeads, 'cap', hd]);
      const wIn = await external(`l${l}.input_norm`, [H], [names.inputNorm]);
      const wQkv = await external(`l${l}.qkv`, [qDim + 2 * kvDim, H], [names.q, names.k, names.v]);
      const wO = await external(`l${l}.o`, [H, qDim], [names.o]);
      const wPost = await external(`l${l}.post_norm`, [H], [names.postNorm]);
      const wGu = await external(`l${l}.gate_up`, [2 * I, H], [names.gate, names.up]);
      const wDown = await external(`l${l}.down`, [H, I], [names.down]);

      const [q, k, v] = g.op('Split', [linear(rmsNorm(x, wIn), wQkv), qkvSplit], { axis: 1 }, 3);
      const qRot = rope(g.op1('Reshape', [q, shapeQ])); // [n, heads, hd]
      const kRot = rope(g.op1('Reshape', [k, shapeKv]), `present_key_${j}`); // [n, kvHeads, hd]
      const vNew = g.op1('Reshape', [v, shapeKv], {}, `present_value_${j}`);
      g.output(`present_key_${j}`, FLOAT, ['n', c.numKvHeads, hd]);
      g.output(`present_value_${j}`, FLOAT, ['n', c.numKvHeads, hd]);
      // Grouped-query attention without repeating K/V: the `group` query heads that share a
      // KV head are stacked as rows, [kvHeads, group * n, hd], so one batched MatMul per KV
      // head reads the cache as it is.
      const qGrouped = g.op1('Reshape', [
        g.op1('Transpose', [g.op1('Reshape', [g.op1('Mul', [qRot, scale]), shapeQGroups])], {
          perm: [1, 2, 0, 3],
        }),
        shapeQRows,
      ]);
      const kNewT = g.op1('Transpose', [kRot], { perm: [1, 2, 0] }); // [kvHeads, hd, n]
      const vNewT = g.op1('Transpose', [vNew], { perm: [1, 0, 2] }); // [kvHeads, n, hd]
      // softmax over [cache | new] = exp(s - max) / (sum_cache + sum_new), per query row.
      const sCache = g.op1('Add', [
        g.op1('Reshape', [g.op1('MatMul', [qGrouped, pastK]), shapeHeadsRows]),
        maskCache,
      ]); // [heads, n, cap]
      const sNew = g.op1('Add', [
        g.op1('Reshape', [g.op1('MatMul', [qGrouped, kNewT]), shapeHeadsRows]),
        maskNew,
      ]); // [heads, n, n]
      const rowMax = g.op1('Max', [
        g.op1('ReduceMax', [sCache], { axes: [-1], keepdims: 1 }),
        g.op1('ReduceMax', [sNew], { axes: [-1], keepdims: 1 }),
      ]); // [heads, n, 1]
      const eCache = g.op1('Exp', [g.op1('Sub', [sCache, rowMax])]);
      const eNew = g.op1('Exp', [g.op1('Sub', [sNew, rowMax])]);
      const denom = g.op1('Add', [
        g.op1('ReduceSum', [eCache, lastAxis], { keepdims: 1 }),
        g.op1('ReduceSum', [eNew, lastAxis], { keepdims: 1 }),
      ]); // [heads, n, 1]
      const weighted = g.op1('Add', [
        g.op1('MatMul', [g.op1('Reshape', [eCache, shapeKvRows]), pastV]),
        g.op1('MatMul', [g.op1('Reshape', [eNew, shapeKvRows]), vNewT]),
      ]); // [kvHeads, group * n, hd]
      const ctx = g.op1('Div', [weighted, g.op1('Reshape', [denom, shapeKvRows])]);
      const ctxRows = g.op1('Reshape', [
        g.op1('Transpose', [g.op1('Reshape', [ctx, shapeOutGroups])], { perm: [2, 0, 1, 3] }),
        shapeFlat,
      ]); // [n, heads * hd]
      const h1 = g.op1('Add', [x, linear(ctxRows, wO)]);

      const [gate, up] = g.op('Split', [linear(rmsNorm(h1, wPost), wGu), guSplit], { axis: 1 }, 2);
      const act = g.op1('Mul', [g.op1('Mul', [gate, g.op1('Sigmoid', [gate])]), up]);
      x = g.op1('Add', [h1, linear(act, wDown)]);
    }

    if (isLast) {
      const wNorm = await external('final_norm', [H], [FINAL_NORM]);
      const head = c.tieWordEmbeddings
        ? (embedName ?? (await external('embed_tokens', [c.vocabSize, H], [EMBED])))
        : await external('lm_head', [c.vocabSize, H], [LM_HEAD]);
      g.op1('Gemm', [rmsNorm(x, wNorm), head], { transB: 1 }, 'logits');
      g.output('logits', FLOAT, ['n', c.vocabSize]);
    } else {
      g.op1('Identity', [x], {}, 'hidden_out');
      g.output('hidden_out', FLOAT, ['n', H]);
    }
  } finally {
    await handle.close();
  }

  const model = onnx.ModelProto.create({
    irVersion: 8,
    producerName: '@pipedec/model',
    producerVersion: String(GRAPH_VERSION),
    opsetImport: [{ domain: '', version: OPSET }],
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
