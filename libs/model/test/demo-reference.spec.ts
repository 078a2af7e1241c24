// The bundled demo pair (models/demo-target, models/demo-draft) against the reference outputs PyTorch
// computed from the stored weights (models/reference/*.json, written by tools/train_demo):
// logits within the stated tolerance, the 32-token greedy continuations exactly, and the
// tokenizer's prompt ids.
import { readFile } from 'node:fs/promises';
import path from 'node:path';

import { OnnxShard, ReferenceModel, loadTokenizer } from '../src/index.js';
import { Chain, argmax, chainBatch, expectClose, row, tempDir } from './helpers.js';

const MODELS = path.resolve(import.meta.dirname, '..', '..', '..', 'models');
// The plain-TypeScript reference runs the 16-layer target too; allow for a busy machine.
const SLOW = 120_000;

interface ReferencePrompt {
  id: string;
  text: string;
  input_ids: number[];
  logits_positions: number[];
  logits: number[][];
  greedy_ids: number[];
}

interface ReferenceFile {
  tolerance: { logits_abs: number };
  prompts: ReferencePrompt[];
}

interface TokenCases {
  cases: { id: string; text: string; ids: number[] }[];
}

async function readJson<T>(file: string): Promise<T> {
  return JSON.parse(await readFile(file, 'utf8')) as T;
}

describe.each(['target', 'draft'])('demo %s model', (name) => {
  const checkpointDir = path.join(MODELS, `demo-${name}`);
  let ref: ReferenceFile;
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  let shard: OnnxShard;

  beforeAll(async () => {
    ref = await readJson<ReferenceFile>(path.join(MODELS, 'reference', `${name}.json`));
    tmp = await tempDir(`demo-${name}`);
    shard = await OnnxShard.open({ checkpointDir, cacheDir: path.join(tmp.dir, 'onnx') });
  }, SLOW);
  afterAll(async () => {
    await shard.close();
    await tmp.cleanup();
  });

  it('has reference prompts to check', () => {
    expect(ref.prompts.length).toBeGreaterThan(0);
    expect(ref.tolerance.logits_abs).toBeLessThanOrEqual(1e-3);
  });

  it('tokenizes every reference prompt to the reference ids', async () => {
    const tok = await loadTokenizer(checkpointDir);
    for (const p of ref.prompts) expect([p.id, tok.encode(p.text)]).toEqual([p.id, p.input_ids]);
  });

  /** Prompt logits at the reference positions, from a shard chain. */
  async function promptLogits(model: Pick<Chain, 'forward'>, seq: string, p: ReferencePrompt) {
    const logits = await model.forward(seq, chainBatch(p.input_ids, 0, 0, -1));
    return p.logits_positions.map((pos) => row(logits, pos, shard.info.vocabSize));
  }

  it(
    'reproduces the reference logits (whole-model session; reference forward on the first prompt)',
    async () => {
      const reference = await ReferenceModel.open({ checkpointDir });
      for (const [i, p] of ref.prompts.entries()) {
        // The plain-TypeScript forward is slow on 16 layers: one prompt pins it.
        const models = i === 0 ? [shard, reference] : [shard];
        for (const model of models) {
          const label = model === shard ? 'onnx' : 'reference';
          const got = await promptLogits(new Chain([model]), `logits-${label}-${p.id}`, p);
          got.forEach((g, k) =>
            expectClose(
              g,
              Float32Array.from(p.logits[k]),
              ref.tolerance.logits_abs,
              `${name} ${label} ${p.id} position ${p.logits_positions[k]}`,
            ),
          );
        }
      }
      await reference.close();
    },
    SLOW,
  );

  it(
    'reproduces the 32-token greedy continuations exactly, one token per call',
    async () => {
      for (const p of ref.prompts) {
        const seq = `greedy-${p.id}`;
        const n = p.input_ids.length;
        let logits = await shard.forward(seq, chainBatch(p.input_ids, 0, 0, -1));
        shard.commit(
          seq,
          p.input_ids.map((_, i) => i),
        );
        const generated = [argmax(row(logits.logits!, n - 1, shard.info.vocabSize))];
        while (generated.length < p.greedy_ids.length) {
          const id = n + generated.length - 1;
          logits = await shard.forward(seq, chainBatch([generated.at(-1)!], id, id, id - 1));
          shard.commit(seq, [id]);
          generated.push(argmax(logits.logits!));
        }
        expect([p.id, generated]).toEqual([p.id, p.greedy_ids]);
        shard.release(seq);
      }
    },
    SLOW,
  );

  it(
    'verifies each continuation in one batch, on a chain of up to four stages',
    async () => {
      const stages = Math.min(4, shard.info.numLayers);
      const chain = await Chain.open(checkpointDir, stages, path.join(tmp.dir, 'onnx'));
      expect(chain.stages).toHaveLength(stages);
      for (const p of ref.prompts) {
        const tokens = [...p.input_ids, ...p.greedy_ids.slice(0, -1)];
        const logits = await chain.forward(`batch-${p.id}`, chainBatch(tokens, 0, 0, -1));
        const predicted = p.greedy_ids.map((_, k) =>
          argmax(row(logits, p.input_ids.length - 1 + k, shard.info.vocabSize)),
        );
        expect([p.id, predicted]).toEqual([p.id, p.greedy_ids]);
      }
      await chain.close();
    },
    SLOW,
  );
});

describe('demo tokenizer', () => {
  it('encodes every reference case to its ids, and decodes and streams them back', async () => {
    const { cases } = await readJson<TokenCases>(path.join(MODELS, 'reference', 'tokens.json'));
    expect(cases.length).toBeGreaterThan(0);
    for (const dir of ['demo-target', 'demo-draft']) {
      const tok = await loadTokenizer(path.join(MODELS, dir));
      for (const c of cases) {
        expect([c.id, tok.encode(c.text)]).toEqual([c.id, c.ids]);
        expect(tok.decode(c.ids.slice(1))).toBe(c.text);
        const stream = tok.createStreamDecoder();
        const streamed =
          c.ids
            .slice(1)
            .map((id) => stream.push(id))
            .join('') + stream.flush();
        expect(streamed).toBe(c.text);
      }
    }
  });
});
