// Rotary frequencies against values computed with transformers' formulas (default and
// rope_type "llama3") for Llama 3.1's parameters: head_dim 128, theta 500000, factor 8,
// low/high frequency factors 1/4, original context 8192.
import { parseLlamaConfig } from '../src/index.js';
import { ropeCosSin, ropeInvFreq } from '../src/rope.js';

const LLAMA31 = {
  vocab_size: 128256,
  hidden_size: 8192,
  intermediate_size: 28672,
  num_hidden_layers: 80,
  num_attention_heads: 64,
  num_key_value_heads: 8,
  max_position_embeddings: 131072,
  rms_norm_eps: 1e-5,
  rope_theta: 500000,
};
const SCALING = {
  rope_type: 'llama3',
  factor: 8,
  low_freq_factor: 1,
  high_freq_factor: 4,
  original_max_position_embeddings: 8192,
};

// index -> expected (python, float64 arithmetic)
const UNSCALED: [number, number][] = [
  [0, 1],
  [20, 0.016560440080994446],
  [40, 0.0002742481756762073],
  [63, 2.455140791131609e-6],
];
const SCALED: [number, number][] = [
  [0, 1], // high frequencies unchanged
  [28, 0.0032114459947525913],
  [29, 0.002166570763503359], // medium band: smoothed
  [30, 0.0013718935677611381],
  [32, 0.0005248461609929547],
  [34, 0.00017850781276799638],
  [35, 9.556212353964683e-5], // low frequencies divided by the factor
  [40, 3.428102195952591e-5],
  [63, 3.068925988914511e-7],
];

describe('rope', () => {
  it('computes the default inverse frequencies', () => {
    const inv = ropeInvFreq(parseLlamaConfig(LLAMA31));
    expect(inv).toHaveLength(64);
    for (const [i, want] of UNSCALED) expect(Math.abs(inv[i] - want) / want).toBeLessThan(1e-6);
  });

  it('applies llama3 scaling: unchanged, smoothed and divided bands', () => {
    const inv = ropeInvFreq(parseLlamaConfig({ ...LLAMA31, rope_scaling: SCALING }));
    for (const [i, want] of SCALED)
      expect([i, Math.abs(inv[i] - want) / want < 1e-6]).toEqual([i, true]);
  });

  it('duplicates cos/sin over both halves (rotate_half pairs j with j + headDim/2)', () => {
    const inv = Float32Array.from([1, 0.5]);
    const { cos, sin } = ropeCosSin(inv, 3);
    expect(Array.from(cos)).toEqual(
      [Math.cos(3), Math.cos(1.5), Math.cos(3), Math.cos(1.5)].map(Math.fround),
    );
    expect(Array.from(sin)).toEqual(
      [Math.sin(3), Math.sin(1.5), Math.sin(3), Math.sin(1.5)].map(Math.fround),
    );
  });
});
