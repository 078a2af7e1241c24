// The compiled API (apps/api/dist/main.js) as its own process, for the benchmarks that measure
// it from outside (bench:api, bench:faults): started on a free port and waited for until
// `readyPath` answers, and stopped (SIGTERM, SIGKILL after 10 s); and reading its streams.
import { freePort } from '@pipedec/testkit/local-cluster';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

export interface ApiProcess {
  url: string;
  child: ChildProcess;
  log: string[];
}

export async function startApi(
  env: Record<string, string>,
  opts: { readyPath: string; nodeFlags?: string[] },
): Promise<ApiProcess> {
  const port = await freePort();
  const main = path.join(ROOT, 'apps/api/dist/main.js');
  const child = spawn(process.execPath, [...(opts.nodeFlags ?? []), main], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env, API_PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log: string[] = [];
  child.stdout?.on('data', (d: Buffer) => log.push(d.toString()));
  child.stderr?.on('data', (d: Buffer) => log.push(d.toString()));
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 600; i++) {
    if (child.exitCode !== null) throw new Error(`API exited:\n${log.join('')}`);
    try {
      await fetch(`${url}${opts.readyPath}`);
      return { url, child, log };
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`API did not answer in 60 s:\n${log.join('')}`);
}

export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await once(child, 'exit');
  clearTimeout(timer);
}

/** Epoch milliseconds with sub-millisecond resolution (comparable with the head's `at`). */
export const now = (): number => performance.timeOrigin + performance.now();

/**
 * POSTs a JSON body with an API key (keep-alive through `agent`) and resolves with the response
 * as it begins, so a streamed body can be read as it arrives. `idleMs`: give up when no data
 * flows for that long.
 */
export function postJson(
  url: string,
  apiKey: string,
  payload: string,
  agent: http.Agent,
  idleMs?: number,
): Promise<http.IncomingMessage> {
  return new Promise<http.IncomingMessage>((resolve, reject) => {
    const req = http.request(url, {
      method: 'POST',
      agent,
      headers: {
        authorization: `Bearer ${apiKey}`,
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(payload),
      },
    });
    if (idleMs !== undefined) {
      req.setTimeout(idleMs, () => req.destroy(new Error(`no data for ${idleMs / 1000} s`)));
    }
    req.on('response', resolve);
    req.on('error', reject);
    req.end(payload);
  });
}

/**
 * The `data` of each server-sent event of a response (comments skipped, '[DONE]' included),
 * with the time its chunk was read.
 */
export async function* sseData(
  res: http.IncomingMessage,
): AsyncGenerator<{ at: number; data: string }> {
  res.setEncoding('utf8');
  let buffer = '';
  for await (const part of res) {
    const at = now();
    buffer += part as string;
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      if (frame.startsWith(':')) continue; // keep-alive or retry comment
      yield { at, data: frame.replace(/^data: /, '') };
    }
  }
}
