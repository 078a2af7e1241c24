// The residual draw of distribution acceptance (a node without candidates: the residual is p),
// old loop against new (gumbelTopK, k = 1), alternated; same tokens.
//   git show c808358:libs/engine/src/acceptance.ts, its imports pointed at ../../../libs/engine/src/,
//   saved as bench/results/sampling-scan-ab/acceptance-old.ts; then
//   npx tsx bench/results/sampling-scan-ab/residual-draw.ts
import * as NEW from '../../../libs/engine/src/acceptance.js';
import * as OLD from './acceptance-old.js';
import { sampledDistribution } from '../../../libs/engine/src/sampling.js';
const V = 4096;
const rows = Array.from({ length: 32 }, (_, r) => Float32Array.from(sampledDistribution(
  Float32Array.from({ length: V }, (_, i) => Math.sin(i * 0.61 + r) * 4), 0, V, { temperature: 1, topP: 1, seed: 0 })));
const time = (f: typeof NEW.acceptDistribution) => {
  let s = 0; const N = 3000; const t = performance.now();
  for (let k = 0; k < N; k++) s += f(rows[k % 32], rows[k % 32], [], 7, 100 + k).token;
  return [(performance.now() - t) * 1000 / N, s];
};
for (let rep = 0; rep < 4; rep++) {
  const [o, so] = time(OLD.acceptDistribution); const [n, sn] = time(NEW.acceptDistribution);
  console.log(`old ${o.toFixed(1)} us/draw, new ${n.toFixed(1)} us/draw, same tokens: ${so === sn}`);
}
