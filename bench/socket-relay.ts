// What the stage node's transport costs a stage per relayed frame (npm run bench:socket):
// a source process sends packet frames one at a time to a relay, which decodes each and sends
// it on to a sink, as a stage forwards a layer packet (without the compute). Both transports a
// stage can use, on the stage node's own classes (bench/socket-relay-worker.mjs): gRPC (Nest's
// gRPC server and the StageGrpcController; GrpcLink over grpc-js) and socket (FrameSocketServer;
// SocketLink, socket/records.ts). Rounds alternate the transports (A B B A ...) so the host's
// drift falls on both. Reports the relay's and the sink's CPU per frame (user + system), the
// median over rounds, and the ratio; prints a markdown table and writes
// bench/results/socket-relay.json.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { parseArgs } from 'node:util';
import { quantile } from './load-client.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const WORKER = path.join(ROOT, 'bench', 'socket-relay-worker.mjs');

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '6' },
    frames: { type: 'string', default: '3000' },
    rows: { type: 'string', default: '1,16' },
    out: { type: 'string', default: path.join(ROOT, 'bench', 'results', 'socket-relay.json') },
  },
});

type Transport = 'grpc' | 'socket';

interface Proc {
  child: ChildProcess;
  lines: AsyncIterableIterator<string>;
}

function start(argv: string[], env: Record<string, string> = {}): Proc {
  const child = spawn(process.execPath, [WORKER, ...argv], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = readline.createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  return { child, lines };
}

async function line(p: Proc): Promise<Record<string, unknown>> {
  const next: IteratorResult<string> = await p.lines.next();
  if (next.done) throw new Error('a relay worker exited early');
  return JSON.parse(next.value) as Record<string, unknown>;
}

/** One round: source -> relay -> sink; the relay's and the sink's CPU µs per frame. */
async function round(t: Transport, rows: number, frames: number) {
  const sink = start(['sink', t]);
  const sinkAt = (await line(sink)).listening as string;
  const relay = start(['relay', t, sinkAt]);
  const relayAt = (await line(relay)).listening as string;
  const source = start(['source', t, relayAt, String(frames)], { ROWS: String(rows) });
  const r = await line(relay);
  const s = await line(sink);
  await once(source.child, 'exit');
  for (const p of [relay, sink]) p.child.kill();
  return { relay: r.cpuUsPerFrame as number, sink: s.cpuUsPerFrame as number };
}

const rounds = Number(args.rounds);
const frames = Number(args.frames);
const rowsList = args.rows.split(',').map(Number);
const rows: {
  rows: number;
  transport: Transport;
  relayUsPerFrame: number;
  sinkUsPerFrame: number;
  relayRounds: number[];
}[] = [];
const load0 = os.loadavg()[0];
for (const r of rowsList) {
  const samples: Record<Transport, { relay: number[]; sink: number[] }> = {
    grpc: { relay: [], sink: [] },
    socket: { relay: [], sink: [] },
  };
  for (let i = 0; i < rounds; i++) {
    const order: Transport[] = i % 2 === 0 ? ['grpc', 'socket'] : ['socket', 'grpc'];
    for (const t of order) {
      const got = await round(t, r, frames);
      samples[t].relay.push(got.relay);
      samples[t].sink.push(got.sink);
      process.stderr.write(`rows ${r} round ${i + 1} ${t}: relay ${got.relay.toFixed(1)} µs\n`);
    }
  }
  for (const t of ['grpc', 'socket'] as const) {
    rows.push({
      rows: r,
      transport: t,
      relayUsPerFrame: quantile(samples[t].relay, 0.5),
      sinkUsPerFrame: quantile(samples[t].sink, 0.5),
      relayRounds: samples[t].relay,
    });
  }
}
const meta = {
  date: new Date().toISOString(),
  rounds,
  frames,
  cpus: os.cpus().length,
  loadAtStart: load0,
  loadAtEnd: os.loadavg()[0],
};
const f = (x: number) => x.toFixed(1);
const lines = [
  `# bench:socket (${meta.date})`,
  '',
  `CPU (user + system) per frame of the relay (receive, decode, encode, send: a stage's packet path without compute) and of the sink (receive, decode), medians of ${rounds} alternated rounds of ${frames} frames sent one at a time; load ${load0.toFixed(2)} at start, ${meta.loadAtEnd.toFixed(2)} at the end, ${meta.cpus} CPUs.`,
  '',
  '| packet rows (x192 fp32) | relay gRPC µs | relay socket µs | socket / gRPC | sink gRPC µs | sink socket µs |',
  '|---|---|---|---|---|---|',
];
for (const r of rowsList) {
  const g = rows.find((x) => x.rows === r && x.transport === 'grpc')!;
  const s = rows.find((x) => x.rows === r && x.transport === 'socket')!;
  lines.push(
    `| ${r} | ${f(g.relayUsPerFrame)} | ${f(s.relayUsPerFrame)} | ${(s.relayUsPerFrame / g.relayUsPerFrame).toFixed(2)} | ${f(g.sinkUsPerFrame)} | ${f(s.sinkUsPerFrame)} |`,
  );
}
const table = lines.join('\n');
process.stdout.write(table + '\n');
await mkdir(path.dirname(args.out), { recursive: true });
await writeFile(args.out, JSON.stringify({ meta, rows, table }, null, 2) + '\n');
