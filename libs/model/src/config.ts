// config.json of a LlamaForCausalLM checkpoint, parsed once into the numbers the graph builder,
// the reference forward and the KV cache need. Everything this library cannot run exactly as
// transformers does is refused here, before any weight is read.
import { z } from 'zod';

import { ModelError } from './errors.js';

export interface Llama3RopeScaling {
  factor: number;
  lowFreqFactor: number;
  highFreqFactor: number;
  originalMaxPositions: number;
}

export interface LlamaConfig {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  maxPositions: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: Llama3RopeScaling | null;
  tieWordEmbeddings: boolean;
  bosTokenId: number;
  eosTokenIds: number[];
  /** The dtype the checkpoint declares (informational: weights are converted to f32 at load). */
  torchDtype: string | null;
}

const positiveInt = z.number().int().positive();

const ropeScalingSchema = z
  .looseObject({
    rope_type: z.string().optional(),
    type: z.string().optional(),
    factor: z.number().positive().optional(),
    low_freq_factor: z.number().positive().optional(),
    high_freq_factor: z.number().positive().optional(),
    original_max_position_embeddings: positiveInt.optional(),
  })
  .nullable()
  .optional();

const configSchema = z.looseObject({
  architectures: z.array(z.string()).optional(),
  model_type: z.string().optional(),
  vocab_size: positiveInt,
  hidden_size: positiveInt,
  intermediate_size: positiveInt,
  num_hidden_layers: positiveInt,
  num_attention_heads: positiveInt,
  num_key_value_heads: positiveInt.nullable().optional(),
  head_dim: positiveInt.nullable().optional(),
  hidden_act: z.string().optional(),
  max_position_embeddings: positiveInt,
  rms_norm_eps: z.number().positive(),
  rope_theta: z.number().positive().optional(),
  rope_scaling: ropeScalingSchema,
  attention_bias: z.boolean().optional(),
  mlp_bias: z.boolean().optional(),
  tie_word_embeddings: z.boolean().optional(),
  bos_token_id: z.number().int().nonnegative().nullable().optional(),
  eos_token_id: z
    .union([z.number().int().nonnegative(), z.array(z.number().int().nonnegative())])
    .nullable()
    .optional(),
  torch_dtype: z.string().nullable().optional(),
  pretraining_tp: z.number().int().optional(),
});

/** Parses and validates a config.json object; `source` names the file in error messages. */
export function parseLlamaConfig(raw: unknown, source = 'config.json'): LlamaConfig {
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map(
      (i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`,
    );
    throw new ModelError('CONFIG_INVALID', `${source}: ${problems.join('; ')}`);
  }
  const c = parsed.data;
  const unsupported: string[] = [];
  if (c.architectures && !c.architectures.includes('LlamaForCausalLM')) {
    unsupported.push(
      `architectures ${JSON.stringify(c.architectures)} (only LlamaForCausalLM is supported)`,
    );
  }
  if (c.model_type !== undefined && c.model_type !== 'llama') {
    unsupported.push(`model_type "${c.model_type}" (only "llama" is supported)`);
  }
  if (c.hidden_act !== undefined && c.hidden_act !== 'silu') {
    unsupported.push(`hidden_act "${c.hidden_act}" (only "silu" is supported)`);
  }
  if (c.attention_bias) unsupported.push('attention_bias true (biases are not supported)');
  if (c.mlp_bias) unsupported.push('mlp_bias true (biases are not supported)');
  const ropeScaling = parseRopeScaling(c.rope_scaling, unsupported);
  if (unsupported.length) {
    throw new ModelError('CONFIG_UNSUPPORTED', `${source}: ${unsupported.join('; ')}`);
  }

  const numKvHeads = c.num_key_value_heads ?? c.num_attention_heads;
  const headDim = c.head_dim ?? c.hidden_size / c.num_attention_heads;
  const invalid: string[] = [];
  if (c.num_attention_heads % numKvHeads !== 0) {
    invalid.push(
      `num_attention_heads (${c.num_attention_heads}) must be a multiple of num_key_value_heads (${numKvHeads})`,
    );
  }
  if (!Number.isInteger(headDim)) {
    invalid.push(
      `hidden_size (${c.hidden_size}) must be a multiple of num_attention_heads (${c.num_attention_heads}) when head_dim is absent`,
    );
  } else if (headDim % 2 !== 0) {
    invalid.push(`head_dim (${headDim}) must be even for rotary embeddings`);
  }
  const eosTokenIds =
    c.eos_token_id === null || c.eos_token_id === undefined
      ? []
      : Array.isArray(c.eos_token_id)
        ? c.eos_token_id
        : [c.eos_token_id];
  for (const [field, id] of [
    ['bos_token_id', c.bos_token_id],
    ...eosTokenIds.map((e) => ['eos_token_id', e] as const),
  ] as const) {
    if (typeof id === 'number' && id >= c.vocab_size) {
      invalid.push(`${field} (${id}) must be below vocab_size (${c.vocab_size})`);
    }
  }
  if (invalid.length) {
    throw new ModelError('CONFIG_INVALID', `${source}: ${invalid.join('; ')}`);
  }

  return {
    vocabSize: c.vocab_size,
    hiddenSize: c.hidden_size,
    intermediateSize: c.intermediate_size,
    numLayers: c.num_hidden_layers,
    numHeads: c.num_attention_heads,
    numKvHeads,
    headDim,
    maxPositions: c.max_position_embeddings,
    rmsNormEps: c.rms_norm_eps,
    ropeTheta: c.rope_theta ?? 10000,
    ropeScaling,
    // transformers' LlamaConfig defaults to untied embeddings.
    tieWordEmbeddings: c.tie_word_embeddings ?? false,
    bosTokenId: c.bos_token_id ?? 0,
    eosTokenIds,
    torchDtype: c.torch_dtype ?? null,
  };
}

function parseRopeScaling(
  rs: z.infer<typeof ropeScalingSchema>,
  unsupported: string[],
): Llama3RopeScaling | null {
  if (!rs) return null;
  // transformers reads "rope_type" and falls back to the legacy "type" key.
  const type = rs.rope_type ?? rs.type;
  if (type === 'default') return null;
  if (type !== 'llama3') {
    unsupported.push(
      `rope_scaling type "${type ?? '(missing)'}" (supported: "llama3", "default" or null)`,
    );
    return null;
  }
  const missing = (
    ['factor', 'low_freq_factor', 'high_freq_factor', 'original_max_position_embeddings'] as const
  ).filter((k) => rs[k] === undefined);
  if (missing.length) {
    throw new ModelError(
      'CONFIG_INVALID',
      `rope_scaling of type "llama3" lacks ${missing.map((m) => `rope_scaling.${m}`).join(', ')}`,
    );
  }
  if (rs.high_freq_factor! <= rs.low_freq_factor!) {
    throw new ModelError(
      'CONFIG_INVALID',
      `rope_scaling.high_freq_factor (${rs.high_freq_factor}) must exceed rope_scaling.low_freq_factor (${rs.low_freq_factor})`,
    );
  }
  return {
    factor: rs.factor!,
    lowFreqFactor: rs.low_freq_factor!,
    highFreqFactor: rs.high_freq_factor!,
    originalMaxPositions: rs.original_max_position_embeddings!,
  };
}
