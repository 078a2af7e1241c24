// Writes a tiny random Llama checkpoint in the full Hugging Face layout, deterministically from
// a seed, so tests and benchmarks never need downloaded weights. Weight scales are chosen so
// attention is not uniform and logits are spread (few near-ties between top tokens).
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';

import { fromFloat32, type WeightDtype } from './dtype.js';
import { ModelError } from './errors.js';
import { writeSafetensors, type TensorToWrite } from './safetensors.js';
import { EMBED, FINAL_NORM, LM_HEAD, layerTensorNames, layerTensorShapes } from './tensor-names.js';
import { parseLlamaConfig } from './config.js';
import { byteLevelTokenizerFiles, SPECIAL_TOKENS } from './byte-level-tokenizer.js';

export interface RandomCheckpointOptions {
  layers: number;
  hidden: number;
  heads: number;
  kvHeads: number;
  intermediate: number;
  /** At least 256 bytes + 5 special tokens: the checkpoint ships a byte-level tokenizer. */
  vocab: number;
  seed: number;
  dtype: 'f32' | 'f16' | 'bf16';
  tied: boolean;
  /** true for Llama 3.1's values, or explicit llama3 parameters. */
  ropeScaling?:
    | boolean
    | {
        factor: number;
        lowFreqFactor: number;
        highFreqFactor: number;
        originalMaxPositions: number;
      };
  ropeTheta?: number; // default 500000 (Llama 3)
  maxPositions?: number; // default 4096
  /** Write the weights as this many files plus model.safetensors.index.json (default 1). */
  shards?: number;
}

const DTYPES: Record<RandomCheckpointOptions['dtype'], { code: WeightDtype; torch: string }> = {
  f32: { code: 'F32', torch: 'float32' },
  f16: { code: 'F16', torch: 'float16' },
  bf16: { code: 'BF16', torch: 'bfloat16' },
};

export async function writeRandomCheckpoint(
  dir: string,
  opts: RandomCheckpointOptions,
): Promise<void> {
  const minVocab = 256 + SPECIAL_TOKENS.length;
  if (opts.vocab < minVocab) {
    throw new ModelError(
      'CONFIG_INVALID',
      `vocab ${opts.vocab} is too small for the byte-level tokenizer (needs >= ${minVocab})`,
    );
  }
  const dtype = DTYPES[opts.dtype];
  const bosId = opts.vocab - SPECIAL_TOKENS.length; // specials sit at the end, as in Llama 3
  const eosId = bosId + 1;
  const eotId = bosId + SPECIAL_TOKENS.indexOf('<|eot_id|>');
  const rs =
    opts.ropeScaling === true
      ? { factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 64 }
      : opts.ropeScaling || null;
  const rawConfig = {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    vocab_size: opts.vocab,
    hidden_size: opts.hidden,
    intermediate_size: opts.intermediate,
    num_hidden_layers: opts.layers,
    num_attention_heads: opts.heads,
    num_key_value_heads: opts.kvHeads,
    head_dim: opts.hidden / opts.heads,
    hidden_act: 'silu',
    max_position_embeddings: opts.maxPositions ?? 4096,
    rms_norm_eps: 1e-5,
    rope_theta: opts.ropeTheta ?? 500000,
    rope_scaling: rs && {
      rope_type: 'llama3',
      factor: rs.factor,
      low_freq_factor: rs.lowFreqFactor,
      high_freq_factor: rs.highFreqFactor,
      original_max_position_embeddings: rs.originalMaxPositions,
    },
    attention_bias: false,
    mlp_bias: false,
    tie_word_embeddings: opts.tied,
    bos_token_id: bosId,
    eos_token_id: [eosId, eotId],
    torch_dtype: dtype.torch,
    transformers_version: '4.46.0',
  };
  const config = parseLlamaConfig(rawConfig, 'random checkpoint config');
  const rng = new SeededRandom(opts.seed);
  const H = config.hiddenSize;

  const tensors: TensorToWrite[] = [];
  const add = (name: string, shape: number[], values: Float32Array) =>
    tensors.push({ name, dtype: dtype.code, shape, data: fromFloat32(values, dtype.code) });
  const uniform = (shape: number[], bound: number) => {
    const v = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < v.length; i++) v[i] = (2 * rng.next() - 1) * bound;
    return v;
  };
  const norm = (dim: number) => {
    const v = new Float32Array(dim);
    for (let i = 0; i < dim; i++) v[i] = 1 + (2 * rng.next() - 1) * 0.2;
    return v;
  };
  // Linear layers: unit-variance outputs for unit-variance inputs (bound sqrt(3 / fan_in)).
  const linear = (shape: number[]) => uniform(shape, Math.sqrt(3 / shape[1]));

  const embed = new Float32Array(config.vocabSize * H);
  for (let i = 0; i < embed.length; i++) embed[i] = rng.normal();
  add(EMBED, [config.vocabSize, H], embed);
  const shapes = layerTensorShapes(config);
  for (let l = 0; l < config.numLayers; l++) {
    const names = layerTensorNames(l);
    for (const key of Object.keys(names) as (keyof typeof names)[]) {
      const shape = shapes[key];
      add(names[key], shape, shape.length === 1 ? norm(shape[0]) : linear(shape));
    }
  }
  add(FINAL_NORM, [H], norm(H));
  if (!config.tieWordEmbeddings)
    add(LM_HEAD, [config.vocabSize, H], uniform([config.vocabSize, H], 2 * Math.sqrt(3 / H)));

  await mkdir(dir, { recursive: true });
  const shardCount = Math.max(1, opts.shards ?? 1);
  if (shardCount === 1) {
    await writeSafetensors(path.join(dir, 'model.safetensors'), tensors);
  } else {
    const weightMap: Record<string, string> = {};
    const per = Math.ceil(tensors.length / shardCount);
    for (let s = 0; s < shardCount; s++) {
      const file = `model-${String(s + 1).padStart(5, '0')}-of-${String(shardCount).padStart(5, '0')}.safetensors`;
      const part = tensors.slice(s * per, (s + 1) * per);
      for (const t of part) weightMap[t.name] = file;
      await writeSafetensors(path.join(dir, file), part);
    }
    const totalSize = tensors.reduce((a, t) => a + t.data.length, 0);
    await writeJson(path.join(dir, 'model.safetensors.index.json'), {
      metadata: { total_size: totalSize },
      weight_map: weightMap,
    });
  }
  await writeJson(path.join(dir, 'config.json'), rawConfig);
  await writeJson(path.join(dir, 'generation_config.json'), {
    bos_token_id: bosId,
    eos_token_id: [eosId, eotId],
    do_sample: false,
  });
  const tok = byteLevelTokenizerFiles(config.vocabSize, config.maxPositions);
  await writeJson(path.join(dir, 'tokenizer.json'), tok.tokenizer);
  await writeJson(path.join(dir, 'tokenizer_config.json'), tok.tokenizerConfig);
}

async function writeJson(file: string, value: unknown): Promise<void> {
  await writeFile(file, JSON.stringify(value, null, 2) + '\n');
}

/** mulberry32: small, fast and good enough for test weights; Box-Muller for normals. */
class SeededRandom {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  normal(): number {
    const u = Math.max(this.next(), 1e-12);
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.next());
  }
}
