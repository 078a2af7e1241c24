import * as NEW from '../../../libs/engine/src/sampling.js';
import * as OLD from './sampling-old.js'; // git show c808358:libs/engine/src/sampling.ts > sampling-old.ts
const V = 4096;
const rows = 64;
const logits = Float32Array.from({ length: V * rows }, (_, i) => Math.sin(i * 0.37) * 3 + Math.cos(i * 0.011) * 2 + (i % 97 === 0 ? 4 : 0));
const p = { temperature: 1, topP: 1, seed: 7 };
function bench(mod: any, label: string) {
  let s = 0; const N = 6000;
  let t = performance.now();
  for (let r = 0; r < N; r++) s += mod.chooseToken(logits, (r % rows) * V, V, 100 + (r % 50), p);
  const a = (performance.now() - t) * 1000 / N;
  const pool: any[] = [];
  for (let r = 0; r < rows; r++) {
    const off = r * V;
    const ids = Int32Array.from(Array.from({ length: V }, (_, i) => i).sort((x, y) => logits[off + y] - logits[off + x] || x - y).slice(0, 64));
    const tl = Float32Array.from(ids, (i) => logits[off + i]);
    pool.push({ ids, logits: tl, offset: 0, count: 64, logMass: NEW.logSumExp(logits, off, V, 1) });
  }
  t = performance.now();
  for (let r = 0; r < N; r++) s += mod.chooseTokenFromTop(pool[r % rows], logits, (r % rows) * V, V, 100 + (r % 50), p);
  const b = (performance.now() - t) * 1000 / N;
  return [a, b, s];
}
const res: Record<string, number[][]> = { old: [], new: [] };
for (let k = 0; k < 6; k++) { res.old.push(bench(OLD, 'old')); res.new.push(bench(NEW, 'new')); }
const med = (xs: number[]) => xs.sort((a, b) => a - b)[xs.length >> 1];
for (const m of ['old', 'new']) console.log(m, 'chooseToken us/row', med(res[m].map((x) => x[0])).toFixed(1), 'fromTop us/row', med(res[m].map((x) => x[1])).toFixed(1), 'checksum', res[m][0][2]);
