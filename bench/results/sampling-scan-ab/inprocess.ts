// One process, the demo pair: the 4-stage target (InProcessPipeline) and the draft, no network.
// PP, STPP (w2, depth 4) and PipeDec (w2) on 6 scripture prompts x 96 tokens, greedy and at
// temperature 1 (seed = prompt index + 1): decode ms/token, tokens per verification, draft
// ms/token, process CPU per token. Each prompt runs twice; the second run counts.
//   [ACC=distribution] TEMPS=0,1 npx tsx --conditions=source bench/results/sampling-scan-ab/inprocess.ts scripture pp,stpp,pipedec
import { InProcessPipeline, StageWorker, generatePP, generateSTPP, generatePipeDec, defaultBranching } from '@pipedec/engine';
import { OnnxShard, splitLayers, loadTokenizer } from '@pipedec/model';
import { readFile } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
const T = 'models/demo-target', D = 'models/demo-draft';
const stages = [] as OnnxShard[];
for (const r of splitLayers(16, 4)) stages.push(await OnnxShard.open({ checkpointDir: T, ...r, intraOpThreads: 1 }));
const draft = await OnnxShard.open({ checkpointDir: D, intraOpThreads: 1, proposals: true } as any);
const tok = await loadTokenizer(T);
const set = process.argv[2] ?? 'scripture';
const lines = (await readFile(`models/prompts/${set}.jsonl`, 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l).text as string);
const prompts = lines.slice(0, 6).map((t) => tok.encode(t).slice(0, 64));
const pipe = new InProcessPipeline(stages.map((s, i) => new StageWorker(s, i)));
const methods = (process.argv[3] ?? 'pp,stpp,pipedec').split(',');
for (const temp of (process.env.TEMPS ?? "0,1").split(",").map(Number)) for (const m of methods) {
  let ms = 0, toks = 0, ver = 0, acc = 0, draftMs = 0, cpu = 0;
  for (const [pi, p] of prompts.entries()) for (const rep of [0, 1]) {
    const req = { requestId: randomUUID(), prompt: p, maxTokens: 96, sampling: temp ? { temperature: 1, topP: 1, seed: pi + 1, acceptance: (process.env.ACC ?? "exact") as "exact" | "distribution" } : undefined, eosTokenIds: [] };
    const c0 = process.cpuUsage(); const t0 = performance.now();
    const res = m === 'pp' ? await generatePP(pipe, req) : m === 'stpp'
      ? await generateSTPP(pipe, draft as any, req, { depth: 4, branching: defaultBranching(2), budget: 8 })
      : await generatePipeDec(pipe, draft as any, req, { width: 2 });
    const wall = performance.now() - t0; const c = process.cpuUsage(c0);
    if (rep === 0) continue;
    const s = res.stats; ms += wall - s.ttftWallMs; toks += s.outputTokens - 1; ver += s.verifications; acc += s.acceptedDraftTokens; draftMs += s.draftMs; cpu += (c.user + c.system) / 1000;
  }
  console.log(`${set} T=${temp} ${m}: ${(ms / toks).toFixed(2)} ms/token, tokens/verif ${(toks / Math.max(1, ver)).toFixed(2)}, accepted/verif ${(acc / Math.max(1, ver)).toFixed(2)}, draft ${(draftMs / toks).toFixed(2)} ms/token, cpu ${(cpu / toks).toFixed(2)} ms/token`);
}
