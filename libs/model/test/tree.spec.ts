// Tree attention: a tree layer computed in one batch with the tree mask gives every node the
// logits of its path run one token at a time; after prune and commit, decoding continues
// exactly as a fresh sequential run.
import { ReferenceModel, openShard, type LayerShard, type TreeBatch } from '../src/index.js';
import { Chain, argmax, chainBatch, expectClose, row, tempDir, tinyCheckpoint } from './helpers.js';

const TOL = 1e-4;
const PROMPT = [295, 72, 101, 108, 108, 111, 44, 32];
const LAST_PROMPT_ID = PROMPT.length - 1;

// id: [token, parent id]; the prompt's rows are ids 0..7.
const TREE: Record<number, [number, number]> = {
  10: [40, LAST_PROMPT_ID],
  11: [41, LAST_PROMPT_ID],
  12: [42, LAST_PROMPT_ID],
  20: [50, 10],
  21: [51, 10],
  22: [52, 11],
  30: [60, 20],
  31: [61, 22],
};

function pathTo(id: number): number[] {
  const tokens: number[] = [];
  for (let cur = id; cur > LAST_PROMPT_ID; cur = TREE[cur][1]) tokens.unshift(TREE[cur][0]);
  return tokens;
}

function treeBatch(ids: number[]): TreeBatch {
  return {
    nodeIds: Int32Array.from(ids),
    parentIds: Int32Array.from(ids, (id) => TREE[id][1]),
    positions: Int32Array.from(ids, (id) => PROMPT.length + pathTo(id).length - 1),
    tokens: Int32Array.from(ids, (id) => TREE[id][0]),
  };
}

type Model = Pick<Chain, 'forward' | 'commit' | 'prune'> & { vocab: number };

/** Logits after each token of `tokens`, fed one at a time to a fresh sequence. */
async function sequential(model: Model, seq: string, tokens: number[]): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  for (let i = 0; i < tokens.length; i++) {
    out.push(await model.forward(seq, chainBatch([tokens[i]], i, i, i - 1)));
    model.commit(seq, [i]);
  }
  return out;
}

describe('tree batches', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  let checkpointDir: string;
  let baseline: Model; // ONNX whole model, fed one token at a time
  const models: Record<string, Model> = {};
  const toClose: LayerShard[] = [];

  const asModel = (stages: LayerShard[]): Model => {
    const chain = new Chain(stages);
    toClose.push(...stages);
    return Object.assign(chain, { vocab: stages[0].info.vocabSize });
  };

  beforeAll(async () => {
    tmp = await tempDir('tree');
    checkpointDir = await tinyCheckpoint(tmp.dir, 'ckpt', { seed: 21 });
    const cacheDir = `${tmp.dir}/onnx`;
    baseline = asModel([await openShard({ checkpointDir, cacheDir })]);
    models['ONNX whole model'] = asModel([await openShard({ checkpointDir, cacheDir })]);
    const chain = await Chain.open(checkpointDir, 2, cacheDir);
    models['ONNX 2-stage chain'] = asModel(chain.stages);
    models['reference'] = asModel([await ReferenceModel.open({ checkpointDir })]);
  });
  afterAll(async () => {
    await Promise.all(toClose.map((s) => s.close()));
    await tmp.cleanup();
  });

  async function prefill(model: Model, seq: string): Promise<void> {
    await model.forward(seq, chainBatch(PROMPT, 0, 0, -1));
    model.commit(
      seq,
      PROMPT.map((_, i) => i),
    );
  }

  async function expectPathLogits(model: Model, got: Map<number, Float32Array>, label: string) {
    for (const [id, logits] of got) {
      const ref = await sequential(baseline, `${label}-path-${id}`, [...PROMPT, ...pathTo(id)]);
      expectClose(logits, ref[ref.length - 1], TOL, `${label}: node ${id}`);
    }
  }

  const orders: Record<string, number[][]> = {
    'the whole tree in one batch': [[10, 11, 12, 20, 21, 22, 30, 31]],
    'one batch, interleaved depths': [[10, 20, 11, 30, 21, 12, 22, 31]],
    'one call per tree layer': [
      [10, 11, 12],
      [20, 21, 22],
      [30, 31],
    ],
  };

  it('keeps sequences apart, running concurrently on one shard', async () => {
    const shard = await openShard({ checkpointDir, cacheDir: `${tmp.dir}/onnx` });
    toClose.push(shard);
    const prompts = [PROMPT, [295, 1, 2, 3, 4, 5], [295, 200, 201]];
    const alone = await Promise.all(prompts.map((p, i) => sequential(baseline, `alone-${i}`, p)));
    const together = await Promise.all(
      prompts.map((p, i) => shard.forward(`together-${i}`, chainBatch(p, 0, 0, -1))),
    );
    together.forEach((logits, i) =>
      alone[i].forEach((want, k) =>
        expectClose(
          row(logits.logits!, k, shard.info.vocabSize),
          want,
          TOL,
          `sequence ${i} row ${k}`,
        ),
      ),
    );
    expect(shard.memory().sequences).toBe(3);
    const inFlight = shard.forward('together-0', chainBatch([7], 50, PROMPT.length, -1));
    expect(() => shard.prune('together-0', new Set())).toThrow(/during its forward/);
    await expect(
      shard.forward('together-0', chainBatch([8], 51, PROMPT.length, -1)),
    ).rejects.toThrow(/already has a forward in flight/);
    await inFlight;
    shard.release('together-1');
    expect(shard.memory().sequences).toBe(2);
  });

  for (const name of ['ONNX whole model', 'ONNX 2-stage chain', 'reference']) {
    describe(name, () => {
      it.each(Object.entries(orders))(
        '%s: every node gets the logits of its path',
        async (order, calls) => {
          const model = models[name];
          const seq = `tree-${order}`;
          await prefill(model, seq);
          const got = new Map<number, Float32Array>();
          for (const ids of calls) {
            const logits = await model.forward(seq, treeBatch(ids));
            ids.forEach((id, i) => got.set(id, row(logits, i, model.vocab).slice()));
          }
          await expectPathLogits(model, got, `${name}/${order}`);
        },
      );

      it('after prune and commit, decoding goes on as a fresh sequential run', async () => {
        const model = models[name];
        const seq = 'tree-then-decode';
        await prefill(model, seq);
        await model.forward(seq, treeBatch([10, 11, 12]));
        await model.forward(seq, treeBatch([20, 21, 22]));
        // The target accepts 10: commit it, keep its subtree. Layer 3 arrives meanwhile.
        model.commit(seq, [10]);
        model.prune(seq, new Set([20, 21]));
        await model.forward(seq, treeBatch([30]));
        // Then 20 and 30 in one go (prune first, commit second, as a broadcast may order it).
        model.prune(seq, new Set([20, 30]));
        model.commit(seq, [20, 30]);
        model.prune(seq, new Set());

        // Greedy continuation, one token per call, versus a fresh sequential run.
        const accepted = [...PROMPT, ...pathTo(30)];
        let parent = 30;
        let next = argmax(
          row((await sequential(baseline, `fresh-${name}`, accepted)).at(-1)!, 0, model.vocab),
        );
        for (let step = 0; step < 6; step++) {
          const id = 100 + step;
          const logits = await model.forward(seq, chainBatch([next], id, accepted.length, parent));
          model.commit(seq, [id]);
          accepted.push(next);
          const fresh = await sequential(baseline, `fresh-${name}-${step}`, accepted);
          expectClose(logits, fresh.at(-1)!, TOL, `${name}: decode step ${step}`);
          next = argmax(logits);
          expect(next).toBe(argmax(fresh.at(-1)!));
          parent = id;
        }
      });
    });
  }
});
