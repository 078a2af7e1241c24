// Tensor names and shapes of transformers' LlamaForCausalLM state dict. Linear weights are
// stored [out, in], as torch.nn.Linear keeps them.
import type { LlamaConfig } from './config.js';

export const EMBED = 'model.embed_tokens.weight';
export const FINAL_NORM = 'model.norm.weight';
export const LM_HEAD = 'lm_head.weight';

export function layerTensorNames(layer: number) {
  const p = `model.layers.${layer}`;
  return {
    inputNorm: `${p}.input_layernorm.weight`,
    q: `${p}.self_attn.q_proj.weight`,
    k: `${p}.self_attn.k_proj.weight`,
    v: `${p}.self_attn.v_proj.weight`,
    o: `${p}.self_attn.o_proj.weight`,
    postNorm: `${p}.post_attention_layernorm.weight`,
    gate: `${p}.mlp.gate_proj.weight`,
    up: `${p}.mlp.up_proj.weight`,
    down: `${p}.mlp.down_proj.weight`,
  };
}

export function layerTensorShapes(
  c: LlamaConfig,
): Record<keyof ReturnType<typeof layerTensorNames>, number[]> {
  const qDim = c.numHeads * c.headDim;
  const kvDim = c.numKvHeads * c.headDim;
  return {
    inputNorm: [c.hiddenSize],
    q: [qDim, c.hiddenSize],
    k: [kvDim, c.hiddenSize],
    v: [kvDim, c.hiddenSize],
    o: [c.hiddenSize, qDim],
    postNorm: [c.hiddenSize],
    gate: [c.intermediateSize, c.hiddenSize],
    up: [c.intermediateSize, c.hiddenSize],
    down: [c.hiddenSize, c.intermediateSize],
  };
}

/** Every tensor the whole model needs, with the shape config.json implies. */
export function expectedTensors(c: LlamaConfig): { name: string; shape: number[] }[] {
  const out = [{ name: EMBED, shape: [c.vocabSize, c.hiddenSize] }];
  const shapes = layerTensorShapes(c);
  for (let l = 0; l < c.numLayers; l++) {
    const names = layerTensorNames(l);
    for (const key of Object.keys(names) as (keyof typeof names)[]) {
      out.push({ name: names[key], shape: shapes[key] });
    }
  }
  out.push({ name: FINAL_NORM, shape: [c.hiddenSize] });
  if (!c.tieWordEmbeddings) out.push({ name: LM_HEAD, shape: [c.vocabSize, c.hiddenSize] });
  return out;
}
