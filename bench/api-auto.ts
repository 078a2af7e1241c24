// bench:api section (d): `decoding_method: "auto"` against each fixed method, through the API,
// on npm start's pipeline (4 stages, warmed up as the service starts). Per prompt set and
// temperature, the same prompts go through POST /v1/completions (streamed) with "pp",
// "stpp", "pipedec" and "auto", in an order rotated every round so load changes on this
// shared host hit all of them alike. A request's decode ms/token is what its client saw:
// (last content chunk - first) / (chunks - 1); auto's choice is read back from
// GET /v1/jobs/:id. The target (#15): auto within 5% of the fastest fixed method on every
// prompt set, i.e. auto's median ms/token <= 1.05x the best fixed method's median.
import http from 'node:http';
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
}

export interface AutoRow {
  set: string;
  temperature: number;
  msPerToken: Record<Method, number>; // medians
  fastestFixed: Exclude<Method, 'auto'>;
  /** auto's median over the fastest fixed method's (target <= AUTO_TARGET). */
  autoOverFastest: number;
  autoChoices: Record<string, number>;
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

async function chosenMethod(o: AutoOptions, requestId: string): Promise<string> {
  const res = await fetch(`${o.apiUrl}/v1/jobs/${requestId}`, {
    headers: { authorization: `Bearer ${o.apiKey}` },
  });
  const job = (await res.json()) as { decoding?: { method: string; width: number } | null };
  const d = job.decoding;
  return d ? `${d.method}${d.method === 'pp' ? '' : `/w${d.width}`}` : 'unknown';
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
            const chosen = method === 'auto' ? await chosenMethod(o, r.requestId) : method;
            samples.push({
              set: set.name,
              temperature,
              method,
              prompt,
              round,
              msPerToken,
              chunks: r.at.length,
              chosen,
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
      rows.push({
        set: set.name,
        temperature,
        msPerToken,
        fastestFixed,
        autoOverFastest: msPerToken.auto / msPerToken[fastestFixed],
        autoChoices,
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
    `npm start's pipeline (4 stages, warmed up as the service starts), ${opts.prompts} prompts per set x ${opts.rounds} rounds, ${opts.maxTokens} tokens, streamed through POST /v1/completions, the four interleaved. Decode ms/token as the client saw it (medians). Target: auto <= ${AUTO_TARGET}x the fastest fixed method on every set.`,
    '',
    '| set | temperature | pp | stpp | pipedec | auto | fastest fixed | **auto / fastest** | auto chose |',
    '|---|---|---|---|---|---|---|---|---|',
  ];
  for (const r of rows) {
    const met = r.autoOverFastest <= AUTO_TARGET ? 'met' : 'not met';
    const chose = Object.entries(r.autoChoices)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ');
    out.push(
      `| ${r.set} | ${r.temperature} | ${f(r.msPerToken.pp)} | ${f(r.msPerToken.stpp)} | ${f(r.msPerToken.pipedec)} | ${f(r.msPerToken.auto)} | ${r.fastestFixed} | **${f(r.autoOverFastest)}x** (${met}) | ${chose} |`,
    );
  }
  return out.join('\n');
}

function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}
