import { generatePipeDec, SimulatedPipeline, StageWorker, PAPER_A100_COST } from '@pipedec/engine';
import { loadTokenizer, openShard, splitLayers } from '@pipedec/model';
import { readFile } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
const T = process.argv[2] === 'greedy' ? 0 : 1;
const target = 'models/demo-target', draftDir = 'models/demo-draft';
const tok = await loadTokenizer(target);
const texts = (await readFile('models/prompts/scripture.jsonl', 'utf8')).split('\n').filter(Boolean).slice(0, 8).map((l) => JSON.parse(l).text);
const whole = await openShard({ checkpointDir: target, intraOpThreads: 1 });
const L = whole.info.numLayers; await whole.close();
const shards = [];
for (const r of splitLayers(L, 8)) shards.push(await openShard({ checkpointDir: target, ...r, intraOpThreads: 1 }));
const draft = await openShard({ checkpointDir: draftDir, intraOpThreads: 1, proposals: true });
let tokens = 0, steps = 0; const t0 = performance.now();
for (const [i, text] of texts.entries()) {
  const pipeline = new SimulatedPipeline(shards.map((s, k) => new StageWorker(s, k)), PAPER_A100_COST);
  const res = await generatePipeDec(pipeline, pipeline.meterDraft(draft), {
    requestId: randomUUID(), prompt: tok.encode(text).slice(0, 48), maxTokens: 64,
    sampling: T ? { temperature: 1, topP: 1, seed: i + 1, acceptance: 'distribution' } : { temperature: 0, topP: 1, seed: 0 },
  }, { width: Number(process.argv[3] ?? 8), refillLayers: Number(process.argv[4] ?? 7), scoreTemperature: 0.5 });
  tokens += res.stats.committedTokens; steps += res.stats.timesteps;
}
console.log(`T=${T} W=${process.argv[3] ?? 8} R=${process.argv[4] ?? 7}: ${tokens} tokens, ${(steps / tokens).toFixed(2)} timesteps/token, ${((performance.now() - t0) / tokens).toFixed(2)} ms/token in-process`);
