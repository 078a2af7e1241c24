// Benchmark of the head's per-token text work (npm run bench:detokenize): StopRules turning a
// request's tokens into streamed text and looking for its stop strings, before and after it
// streamed (libs/engine stop.ts). "re-decode": the tokenizer decodes every token so far at
// each token (as before), quadratic in the output's length. "stream": StopRules over the
// tokenizer's streaming decoder, one token's bytes per token. Demo tokenizer, a held-out
// prompt's text repeated to length, one stop string; both in this process, alternated round by
// round, process CPU time per token, medians of the rounds. The machine is shared: the
// 1-minute load average is recorded before and after. Prints a markdown table and writes
// bench/results/detokenize.json.
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

import { StopRules } from '@pipedec/engine';
import { loadTokenizer } from '@pipedec/model';

const ROOT = path.resolve(import.meta.dirname, '..');
const { values: args } = parseArgs({
  options: {
    lengths: { type: 'string', default: '128,512,1000' },
    rounds: { type: 'string', default: '7' },
    out: { type: 'string', default: path.join(ROOT, 'bench/results/detokenize.json') },
  },
});
const LENGTHS = args.lengths.split(',').map(Number);
const ROUNDS = Number(args.rounds);

const tok = await loadTokenizer(path.join(ROOT, 'models', 'demo-target'));
const passage =
  'In the beginning God created the heaven and the earth. And the earth was without form, ' +
  'and void; and darkness was upon the face of the deep. ';
const ids = tok.encode(passage.repeat(Math.ceil(Math.max(...LENGTHS) / 20)), {
  addSpecialTokens: false,
});
const STOP = ['\n\n'];

/** CPU ms per token of one request of `n` tokens through StopRules, either way. */
function perToken(n: number, way: 're-decode' | 'stream'): number {
  const seq = ids.slice(0, n);
  const t = process.cpuUsage();
  if (way === 'stream') {
    const rules = new StopRules({
      maxTokens: n,
      finishAtLimit: 'max_tokens',
      eosTokenIds: [],
      stop: STOP,
      text: tok.createStreamDecoder({ skipSpecialTokens: true }),
    });
    for (const id of seq) rules.push(id);
  } else {
    // The old rule: the whole output decoded again at every token, stops searched near its end.
    const acc: number[] = [];
    for (const id of seq) {
      acc.push(id);
      const full = tok.decode(acc, { skipSpecialTokens: true });
      for (const s of STOP) full.indexOf(s, Math.max(0, full.length - 64));
    }
  }
  const u = process.cpuUsage(t);
  return (u.user + u.system) / 1000 / n;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const loadBefore = os.loadavg()[0];
const rows = LENGTHS.map((n) => {
  const got = { 're-decode': [] as number[], stream: [] as number[] };
  perToken(n, 'stream'); // warm both paths' code
  perToken(n, 're-decode');
  for (let r = 0; r < ROUNDS; r++) {
    const order =
      r % 2 === 0 ? (['re-decode', 'stream'] as const) : (['stream', 're-decode'] as const);
    for (const way of order) got[way].push(perToken(n, way));
  }
  const redecode = median(got['re-decode']);
  const stream = median(got.stream);
  return {
    tokens: n,
    redecodeMsPerToken: redecode,
    streamMsPerToken: stream,
    ratio: redecode / stream,
  };
});
const loadAfter = os.loadavg()[0];

console.log('| output tokens | re-decode ms / token | stream ms / token | re-decode / stream |');
console.log('|---:|---:|---:|---:|');
for (const r of rows) {
  console.log(
    `| ${r.tokens} | ${r.redecodeMsPerToken.toFixed(4)} | ${r.streamMsPerToken.toFixed(4)} | ${r.ratio.toFixed(0)}x |`,
  );
}
console.log(
  `\nload (1 min) ${loadBefore.toFixed(2)} -> ${loadAfter.toFixed(2)}; ${os.availableParallelism()} cores`,
);
await mkdir(path.dirname(args.out), { recursive: true });
await writeFile(
  args.out,
  JSON.stringify(
    {
      meta: { date: new Date().toISOString(), rounds: ROUNDS, loadBefore, loadAfter, stop: STOP },
      rows,
    },
    null,
    2,
  ) + '\n',
);
