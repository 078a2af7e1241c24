// bench:api section (d): `decoding_method: "auto"` against each fixed method, through the API,
// on npm start's pipeline (4 stages, warmed up as the service starts). Per prompt set and
// temperature, the same prompts go through POST /v1/completions (streamed) with "pp",
// "stpp", "pipedec" and "auto", in an order rotated every round so load changes on this
// shared host hit all of them alike. A request's decode ms/token is what its client saw:
// (last content chunk - first) / (chunks - 1); auto's choice is read back from
// GET /v1/jobs/:id. The target (#15): auto within 5% of the fastest fixed method on every
// prompt set, i.e. auto's median ms/token <= 1.05x the best fixed method's median.
import http from 'node:http';
import { decodingLabel } from '@pipedec/contracts';
import { postJson, sseData } from './api-process.js';

export const AUTO_METHODS = ['pp', 'stpp', 'pipedec', 'auto'] as const;
type Method = (typeof AUTO_METHODS)[number];
export const AUTO_TARGET = 1.05;

export interface AutoOptions {
  apiUrl: string;
  apiKey: string;
  model: string;
  sets: { name: string; texts: string[] }[];
  temperatures: number[];
  rounds: number;
  maxTokens: number;
  progress: (line: string) => void;
}

export interface AutoSample {
  set: string;
  temperature: number;
  method: Method;
  prompt: number;
  round: number;
  msPerToken: number;
  chunks: number;
  /** What ran: the method named, or auto's choice. */
  chosen: string;
  /** Why auto chose it: 'fastest' (lowest median), 'explore' or 'untried'; absent for fixed. */
  reason?: string;
}

export interface AutoRow {
  set: string;
  temperature: number;
  msPerToken: Record<Method, number>; // medians
  fastestFixed: Exclude<Method, 'auto'>;
  /** auto's median over the fastest fixed method's (target <= AUTO_TARGET). */
  autoOverFastest: number;
  /**
   * The same comparison paired: the geometric mean, over the (prompt, round) pairs that have
   * both, of auto's ms/token over the fastest fixed method's on that prompt in that round. The
   * two prompts of a set decode at different speeds (up to 1.6x here), so a median over both
   * falls between their clusters and swings with a single sample; the pairs cancel that.
   */
  autoOverFastestPaired: number;
  pairs: number;
  autoChoices: Record<string, number>;
  /** auto's requests chosen to measure a candidate ('explore', 'untried'), not by speed. */
  autoExplored: number;
  /** auto's requests that ran what the fastest fixed method ran (method and width). */
  autoRanFastest: number;
  /**
   * The measurement's own spread: the geometric mean of auto's ms/token over the fixed
   * method's on the same prompt in the same round, over auto's requests that ran exactly a
   * fixed method (any of them). 1 would be a noiseless host; the target's 5% is of its order.
   */
  sameMethodPaired: number;
  sameMethodPairs: number;
  requests: number;
}

const agent = new http.Agent({ keepAlive: true });

async function streamed(o: AutoOptions, text: string, method: Method, temperature: number) {
  const payload = JSON.stringify({
    model: o.model,
    prompt: text,
    max_tokens: o.maxTokens,
    temperature,
    decoding_method: method,
    stream: true,
  });
  const res = await postJson(`${o.apiUrl}/v1/completions`, o.apiKey, payload, agent);
  if (res.statusCode !== 200) throw new Error(`${method}: HTTP ${res.statusCode}`);
  const requestId = res.headers['x-request-id'] as string;
  const at: number[] = [];
  for await (const { at: t, data } of sseData(res)) {
    if (data === '[DONE]') continue;
    const chunk = JSON.parse(data) as { choices?: { text?: string }[] };
    if (chunk.choices?.[0]?.text) at.push(t);
  }
  return { requestId, at };
}

async function chosenMethod(
  o: AutoOptions,
  requestId: string,
): Promise<{ chosen: string; reason?: string }> {
  const res = await fetch(`${o.apiUrl}/v1/jobs/${requestId}`, {
    headers: { authorization: `Bearer ${o.apiKey}` },
  });
  const job = (await res.json()) as {
    decoding?: { method: string; width: number; reason?: string } | null;
  };
  const d = job.decoding;
  if (!d) return { chosen: 'unknown' };
  return { chosen: decodingLabel(d), reason: d.reason };
}

export async function measureAuto(
  o: AutoOptions,
): Promise<{ samples: AutoSample[]; rows: AutoRow[] }> {
  const samples: AutoSample[] = [];
  for (let round = 0; round < o.rounds; round++) {
    for (const set of o.sets) {
      for (const temperature of o.temperatures) {
        for (const [prompt, text] of set.texts.entries()) {
          for (let k = 0; k < AUTO_METHODS.length; k++) {
            const method = AUTO_METHODS[(k + round + prompt) % AUTO_METHODS.length];
            const r = await streamed(o, text, method, temperature);
            if (r.at.length < 8) continue; // too short to time its decoding
            const msPerToken = (r.at[r.at.length - 1] - r.at[0]) / (r.at.length - 1);
            // Fixed methods too: what ran (their width is the API's default) is what auto's
            // choice is compared with.
            const { chosen, reason } = await chosenMethod(o, r.requestId);
            samples.push({
              set: set.name,
              temperature,
              method,
              prompt,
              round,
              msPerToken,
              chunks: r.at.length,
              chosen,
              ...(reason === undefined || method !== 'auto' ? {} : { reason }),
            });
          }
        }
      }
    }
    o.progress(`(d) round ${round + 1}/${o.rounds} done`);
  }
  const rows: AutoRow[] = [];
  for (const set of o.sets) {
    for (const temperature of o.temperatures) {
      const of = (m: Method) =>
        samples.filter(
          (s) => s.set === set.name && s.temperature === temperature && s.method === m,
        );
      const msPerToken = Object.fromEntries(
        AUTO_METHODS.map((m) => [m, median(of(m).map((s) => s.msPerToken))]),
      ) as Record<Method, number>;
      const fixed = (['pp', 'stpp', 'pipedec'] as const).filter((m) =>
        Number.isFinite(msPerToken[m]),
      );
      if (fixed.length === 0) continue;
      const fastestFixed = fixed.reduce((a, b) => (msPerToken[b] < msPerToken[a] ? b : a));
      const autoChoices: Record<string, number> = {};
      for (const s of of('auto')) autoChoices[s.chosen] = (autoChoices[s.chosen] ?? 0) + 1;
      const vsFastest = paired(of('auto'), of(fastestFixed));
      // Auto's requests against the fixed request that ran exactly what each ran.
      const twice = paired(of('auto'), [...of('pp'), ...of('stpp'), ...of('pipedec')], true);
      rows.push({
        set: set.name,
        temperature,
        msPerToken,
        fastestFixed,
        autoOverFastest: msPerToken.auto / msPerToken[fastestFixed],
        autoOverFastestPaired: vsFastest.ratio,
        pairs: vsFastest.pairs,
        autoChoices,
        autoExplored: of('auto').filter((s) => s.reason !== undefined && s.reason !== 'fastest')
          .length,
        autoRanFastest: of('auto').filter((s) => s.chosen === of(fastestFixed)[0]?.chosen).length,
        sameMethodPaired: twice.ratio,
        sameMethodPairs: twice.pairs,
        requests: AUTO_METHODS.reduce((n, m) => n + of(m).length, 0),
      });
    }
  }
  return { samples, rows };
}

export function autoTable(
  rows: AutoRow[],
  opts: { rounds: number; maxTokens: number; prompts: number },
): string {
  const f = (x: number, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : '-');
  const out = [
    `## (d) auto against the fixed methods`,
    '',
    `npm start's pipeline (4 stages, warmed up as the service starts), ${opts.prompts} prompts per set x ${opts.rounds} rounds, ${opts.maxTokens} tokens, streamed through POST /v1/completions, the four interleaved. Decode ms/token as the client saw it (medians). Target: auto <= ${AUTO_TARGET}x the fastest fixed method on every set. auto / fastest is the ratio of the medians; paired is the geometric mean of auto's ms/token over the fastest fixed method's on the same prompt in the same round (the set's two prompts decode at different speeds, which the pairs cancel). ran fastest: auto's requests that ran what the fastest fixed method ran (method and width). same method twice: the paired ratio over auto's requests that ran exactly what a fixed request of the same prompt and round ran, i.e. what this host's noise alone gives.`,
    '',
    '| set | temperature | pp | stpp | pipedec | auto | fastest fixed | **auto / fastest** | **paired** | auto chose | ran fastest | same method twice |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const r of rows) {
    const met = (x: number) => (x <= AUTO_TARGET ? 'met' : 'not met');
    const chose =
      Object.entries(r.autoChoices)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ') + (r.autoExplored > 0 ? ` (${r.autoExplored} to measure, not by speed)` : '');
    out.push(
      `| ${r.set} | ${r.temperature} | ${f(r.msPerToken.pp)} | ${f(r.msPerToken.stpp)} | ${f(r.msPerToken.pipedec)} | ${f(r.msPerToken.auto)} | ${r.fastestFixed} | **${f(r.autoOverFastest)}x** (${met(r.autoOverFastest)}) | **${f(r.autoOverFastestPaired)}x** (${met(r.autoOverFastestPaired)}, ${r.pairs} pairs) | ${chose} | ${r.autoRanFastest}/${r.autoChoices ? Object.values(r.autoChoices).reduce((a, b) => a + b, 0) : 0} | ${f(r.sameMethodPaired)}x (${r.sameMethodPairs} pairs) |`,
    );
  }
  return out.join('\n');
}

/**
 * Geometric mean of a's ms/token over b's, each sample of a paired with the first of b that
 * ran the same prompt in the same round (and, with `sameRun`, ran what it ran).
 */
function paired(
  a: AutoSample[],
  b: AutoSample[],
  sameRun = false,
): { ratio: number; pairs: number } {
  let logSum = 0;
  let pairs = 0;
  for (const x of a) {
    const y = b.find(
      (s) => s.prompt === x.prompt && s.round === x.round && (!sameRun || s.chosen === x.chosen),
    );
    if (!y) continue;
    logSum += Math.log(x.msPerToken / y.msPerToken);
    pairs++;
  }
  return { ratio: pairs > 0 ? Math.exp(logSum / pairs) : NaN, pairs };
}

function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}
