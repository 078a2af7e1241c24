// config.json validation: what transformers' LlamaConfig accepts and this library can run
// exactly; everything else refused with the field named.
import { ModelError, parseLlamaConfig } from '../src/index.js';

const BASE = {
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  vocab_size: 128256,
  hidden_size: 8192,
  intermediate_size: 28672,
  num_hidden_layers: 80,
  num_attention_heads: 64,
  num_key_value_heads: 8,
  hidden_act: 'silu',
  max_position_embeddings: 131072,
  rms_norm_eps: 1e-5,
  rope_theta: 500000,
  rope_scaling: {
    factor: 8,
    low_freq_factor: 1,
    high_freq_factor: 4,
    original_max_position_embeddings: 8192,
    rope_type: 'llama3',
  },
  tie_word_embeddings: false,
  bos_token_id: 128000,
  eos_token_id: [128001, 128008, 128009],
  torch_dtype: 'bfloat16',
};

function refusal(raw: unknown): ModelError {
  try {
    parseLlamaConfig(raw);
  } catch (e) {
    if (e instanceof ModelError) return e;
    throw e;
  }
  throw new Error('config was accepted');
}

describe('parseLlamaConfig', () => {
  it("reads Llama-3.1-70B's config", () => {
    expect(parseLlamaConfig(BASE)).toEqual({
      vocabSize: 128256,
      hiddenSize: 8192,
      intermediateSize: 28672,
      numLayers: 80,
      numHeads: 64,
      numKvHeads: 8,
      headDim: 128,
      maxPositions: 131072,
      rmsNormEps: 1e-5,
      ropeTheta: 500000,
      ropeScaling: { factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 },
      tieWordEmbeddings: false,
      bosTokenId: 128000,
      eosTokenIds: [128001, 128008, 128009],
      torchDtype: 'bfloat16',
    });
  });

  it('applies the LlamaConfig defaults', () => {
    const c = parseLlamaConfig({
      vocab_size: 100,
      hidden_size: 64,
      intermediate_size: 128,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      max_position_embeddings: 256,
      rms_norm_eps: 1e-6,
      eos_token_id: 2,
    });
    expect(c).toMatchObject({
      numKvHeads: 4,
      headDim: 16,
      ropeTheta: 10000,
      ropeScaling: null,
      tieWordEmbeddings: false,
      eosTokenIds: [2],
    });
    expect(
      parseLlamaConfig({ ...BASE, rope_scaling: { rope_type: 'default' } }).ropeScaling,
    ).toBeNull();
    expect(
      parseLlamaConfig({
        ...BASE,
        rope_scaling: { ...BASE.rope_scaling, rope_type: undefined, type: 'llama3' },
      }).ropeScaling,
    ).not.toBeNull();
  });

  it.each<[string, unknown, string, RegExp]>([
    [
      'another rope type',
      { ...BASE, rope_scaling: { rope_type: 'yarn', factor: 4 } },
      'CONFIG_UNSUPPORTED',
      /rope_scaling type "yarn"/,
    ],
    [
      'legacy linear scaling',
      { ...BASE, rope_scaling: { type: 'linear', factor: 2 } },
      'CONFIG_UNSUPPORTED',
      /rope_scaling type "linear"/,
    ],
    [
      'another architecture',
      { ...BASE, architectures: ['MistralForCausalLM'] },
      'CONFIG_UNSUPPORTED',
      /MistralForCausalLM/,
    ],
    [
      'another model_type',
      { ...BASE, model_type: 'qwen2' },
      'CONFIG_UNSUPPORTED',
      /model_type "qwen2"/,
    ],
    [
      'another activation',
      { ...BASE, hidden_act: 'gelu' },
      'CONFIG_UNSUPPORTED',
      /hidden_act "gelu"/,
    ],
    ['attention biases', { ...BASE, attention_bias: true }, 'CONFIG_UNSUPPORTED', /attention_bias/],
    [
      'an incomplete llama3 rope',
      { ...BASE, rope_scaling: { rope_type: 'llama3', factor: 8 } },
      'CONFIG_INVALID',
      /rope_scaling.low_freq_factor, rope_scaling.high_freq_factor, rope_scaling.original_max_position_embeddings/,
    ],
    [
      'missing and negative fields',
      { ...BASE, vocab_size: undefined, hidden_size: -1 },
      'CONFIG_INVALID',
      /vocab_size: .*; hidden_size: /,
    ],
    [
      'a string where a number belongs',
      { ...BASE, num_hidden_layers: '80' },
      'CONFIG_INVALID',
      /num_hidden_layers/,
    ],
    [
      'heads not divisible by KV heads',
      { ...BASE, num_key_value_heads: 7 },
      'CONFIG_INVALID',
      /num_attention_heads \(64\) must be a multiple of num_key_value_heads \(7\)/,
    ],
    [
      'hidden not divisible by heads',
      { ...BASE, hidden_size: 100, num_attention_heads: 3, num_key_value_heads: 3 },
      'CONFIG_INVALID',
      /hidden_size \(100\) must be a multiple of num_attention_heads \(3\)/,
    ],
    [
      'an odd head_dim',
      { ...BASE, head_dim: 65 },
      'CONFIG_INVALID',
      /head_dim \(65\) must be even/,
    ],
    [
      'a bos id outside the vocabulary',
      { ...BASE, bos_token_id: 128256 },
      'CONFIG_INVALID',
      /bos_token_id \(128256\) must be below vocab_size/,
    ],
    ['not an object', [1, 2], 'CONFIG_INVALID', /\(root\)/],
  ])('refuses %s', (_label, raw, code, message) => {
    const err = refusal(raw);
    expect(err.code).toBe(code);
    expect(err.message).toMatch(message);
  });
});
