// N stages equal one stage equal the reference: shard chains of 1, 2, 3 and L stages, the
// plain-TypeScript reference forward and one whole-model session agree on every logit.
import { ReferenceModel, openShard, type RandomCheckpointOptions } from '../src/index.js';
import { Chain, chainBatch, expectClose, tempDir, tinyCheckpoint } from './helpers.js';

const TOL = 1e-4;

// Prompt, then three steps of a small tree (two candidates per step, the first continues).
const PROMPT = [295, 17, 104, 101, 108, 108, 111, 32];

async function runScenario(shard: {
  forward: Chain['forward'];
  commit: Chain['commit'];
  prune: Chain['prune'];
}) {
  const seq = 'parity';
  const outputs: Float32Array[] = [];
  outputs.push(await shard.forward(seq, chainBatch(PROMPT, 0, 0, -1)));
  shard.commit(
    seq,
    PROMPT.map((_, i) => i),
  );
  let last = PROMPT.length - 1;
  let nextId = 100;
  for (let step = 0; step < 3; step++) {
    const pos = PROMPT.length + step;
    const a = nextId++;
    const b = nextId++;
    outputs.push(
      await shard.forward(seq, {
        nodeIds: Int32Array.from([a, b]),
        parentIds: Int32Array.from([last, last]),
        positions: Int32Array.from([pos, pos]),
        tokens: Int32Array.from([40 + step, 200 + step]),
      }),
    );
    shard.commit(seq, [a]);
    shard.prune(seq, new Set());
    last = a;
  }
  return outputs;
}

describe.each<[string, Partial<RandomCheckpointOptions>]>([
  [
    'bf16, untied, GQA, llama3 rope scaling, 3 weight files',
    { dtype: 'bf16', tied: false, shards: 3 },
  ],
  [
    'f16, tied, MHA, plain rope',
    { dtype: 'f16', tied: true, heads: 4, kvHeads: 4, ropeScaling: false, seed: 11 },
  ],
  [
    'f32, untied, 8 query heads on 1 KV head, 3 layers',
    { dtype: 'f32', heads: 8, kvHeads: 1, layers: 3, seed: 3 },
  ],
])('%s', (_label, overrides) => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  let checkpointDir: string;
  let expected: Float32Array[];

  beforeAll(async () => {
    tmp = await tempDir('parity');
    checkpointDir = await tinyCheckpoint(tmp.dir, 'ckpt', overrides);
    const ref = await ReferenceModel.open({ checkpointDir });
    expected = await runScenario(new Chain([ref]));
    await ref.close();
  });
  afterAll(() => tmp.cleanup());

  it('one whole-model session matches the reference forward', async () => {
    const whole = await openShard({ checkpointDir, cacheDir: `${tmp.dir}/onnx` });
    expect(whole.isFirst && whole.isLast).toBe(true);
    const got = await runScenario(new Chain([whole]));
    got.forEach((g, i) => expectClose(g, expected[i], TOL, `whole model, call ${i}`));
    await whole.close();
  });

  it.each([1, 2, 3, 'L'] as const)(
    'a chain of %s ONNX stage(s) matches the reference',
    async (stages) => {
      const layers = overrides.layers ?? 4;
      const count = stages === 'L' ? layers : stages;
      const chain = await Chain.open(checkpointDir, count, `${tmp.dir}/onnx`);
      expect(chain.stages.map((s) => [s.layerStart, s.layerEnd, s.isFirst, s.isLast])).toHaveLength(
        count,
      );
      expect(chain.stages[0].isFirst).toBe(true);
      expect(chain.stages[count - 1].isLast).toBe(true);
      const got = await runScenario(chain);
      got.forEach((g, i) => expectClose(g, expected[i], TOL, `${count} stages, call ${i}`));
      await chain.close();
    },
  );

  it('a chain of L reference stages matches the whole reference model', async () => {
    const layers = overrides.layers ?? 4;
    const stages = await Promise.all(
      Array.from({ length: layers }, (_, l) =>
        ReferenceModel.open({ checkpointDir, layerStart: l, layerEnd: l + 1 }),
      ),
    );
    const got = await runScenario(new Chain(stages));
    got.forEach((g, i) => expectClose(g, expected[i], TOL, `reference chain, call ${i}`));
    await Promise.all(stages.map((s) => s.close()));
  });
});
