// Where a process's CPU goes, from `perf` samples (npm run perf:breakdown -- FILE): the share
// inside ONNX Runtime, in the kernel, in V8's garbage collector, in libc's memory copies and
// allocator, and the rest (JavaScript and the V8/Node runtime), per process; the hottest leaf
// symbols outside ONNX Runtime; JavaScript functions by inclusive share outside it.
//
// Why perf and not --cpu-prof: V8's profiler samples wall time on the JavaScript thread, so a
// process preempted inside a call (4 stage processes on 2 cores) charges the wait to whatever
// it was in: process.cpuUsage and writev looked like 10-15% of a stage. perf samples CPU
// cycles, whoever is on the core. Recipe (stage processes with JIT symbol maps):
//
//   PIPEDEC_STAGE_NODE_FLAGS=--perf-basic-prof npm run bench:batching -- --clusters lo4 \
//     --clients 8 --methods pp --join-long false --requests 3 --out /tmp/b.json &
//   perf record -a -g -F 499 -o /tmp/perf.data -- sleep 75
//   perf script -i /tmp/perf.data -F pid,time,ip,sym,dso > /tmp/perf.txt
//   npm run perf:breakdown -- /tmp/perf.txt --from 845 --to 855 --pids 9239,9245
//
// --from/--to: perf's clock (seconds since boot, as `cat /proc/uptime` reads) around the load;
// without --pids, the 6 busiest processes. JavaScript names come from /tmp/perf-<pid>.map,
// which only grows: a name is that of the code once at that address, so treat them as hints.
import { createReadStream } from 'node:fs';
import readline from 'node:readline';
import { parseArgs } from 'node:util';

const { values: args, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    from: { type: 'string', default: '' },
    to: { type: 'string', default: '' },
    pids: { type: 'string', default: '' },
    top: { type: 'string', default: '15' },
  },
});
if (positionals.length !== 1) {
  console.error(
    'usage: npm run perf:breakdown -- <perf script output> [--from S] [--to S] [--pids a,b] [--top N]',
  );
  process.exit(2);
}
const FROM = args.from ? Number(args.from) : -Infinity;
const TO = args.to ? Number(args.to) : Infinity;
const TOP = Number(args.top);

interface Frame {
  sym: string;
  dso: string;
}
interface Sample {
  pid: string;
  frames: Frame[];
}

/** perf script -F pid,time,ip,sym,dso: a header line "pid time:", then one line per frame. */
async function readSamples(file: string): Promise<Sample[]> {
  const out: Sample[] = [];
  let cur: Sample | null = null;
  const lines = readline.createInterface({ input: createReadStream(file), crlfDelay: Infinity });
  for await (const line of lines) {
    if (line.trim() === '') continue;
    const header = /^\s*(\d+)\s+(\d+\.\d+):\s*$/.exec(line);
    if (header) {
      const [, pid, time] = header;
      const t = Number.parseFloat(time);
      cur = t >= FROM && t <= TO ? { pid, frames: [] } : null;
      if (cur) out.push(cur);
      continue;
    }
    const m = /^\s*[0-9a-f]+\s+(.*)\s+\((.*)\)\s*$/.exec(line);
    if (cur && m) cur.frames.push({ sym: m[1], dso: m[2].split('/').pop() ?? m[2] });
  }
  return out;
}

const GC =
  /v8::internal::(Heap|Scavenger|MarkCompact|ConcurrentMarking|Sweeper|MinorMarkSweep|MarkingVisitor)/;
const MEMORY =
  /^(__memmove|__memset|__memcpy|malloc|_int_malloc|_int_free|cfree|free|unlink_chunk|malloc_consolidate|calloc)/;

function category(frames: Frame[]): string {
  if (frames.some((f) => f.dso.startsWith('libonnxruntime'))) return 'ONNX Runtime';
  const leaf = frames[0];
  if (!leaf) return 'other';
  if (leaf.dso === '[kernel.kallsyms]') return 'kernel';
  if (frames.some((f) => GC.test(f.sym))) return 'V8 GC';
  // A copy with no caller on the stack came from code without frame pointers: ONNX Runtime's.
  if (leaf.dso.startsWith('libc') && MEMORY.test(leaf.sym)) {
    return frames.length === 1 ? 'libc copy/alloc (no caller: ORT?)' : 'libc copy/alloc';
  }
  return 'JavaScript + V8/Node runtime';
}

const samples = await readSamples(positionals[0]);
const byPid = new Map<string, Sample[]>();
for (const s of samples) {
  if (s.pid === '0') continue; // idle
  const list = byPid.get(s.pid) ?? [];
  list.push(s);
  byPid.set(s.pid, list);
}
const pids = args.pids
  ? args.pids.split(',')
  : [...byPid.entries()]
      .sort((a, b) => b[1].length - a[1].length)
      .slice(0, 6)
      .map(([p]) => p);
const pct = (n: number, d: number) => `${((100 * n) / d).toFixed(1)}%`;

const CATEGORIES = [
  'ONNX Runtime',
  'libc copy/alloc (no caller: ORT?)',
  'libc copy/alloc',
  'kernel',
  'V8 GC',
  'JavaScript + V8/Node runtime',
  'other',
];
console.log(`| process | samples | ${CATEGORIES.join(' | ')} |`);
console.log(`|---|---:|${CATEGORIES.map(() => '---:').join('|')}|`);
for (const pid of pids) {
  const list = byPid.get(pid) ?? [];
  const counts = new Map<string, number>();
  for (const s of list) counts.set(category(s.frames), (counts.get(category(s.frames)) ?? 0) + 1);
  console.log(
    `| ${pid} | ${list.length} | ${CATEGORIES.map((c) => pct(counts.get(c) ?? 0, list.length || 1)).join(' | ')} |`,
  );
}

for (const pid of pids) {
  const list = byPid.get(pid) ?? [];
  const outside = list.filter((s) => category(s.frames) !== 'ONNX Runtime');
  const leaves = new Map<string, number>();
  const js = new Map<string, number>();
  for (const s of outside) {
    const leaf = s.frames[0] ? `${s.frames[0].sym} (${s.frames[0].dso})` : '?';
    leaves.set(leaf, (leaves.get(leaf) ?? 0) + 1);
    const seen = new Set<string>();
    for (const f of s.frames) {
      if (!f.sym.startsWith('JS:')) continue;
      const name = f.sym
        .replace(/^JS:[*^~]?/, '')
        .replace(/file:\/\/\/?[^ ]*?\/(apps|libs|node_modules)\//, '$1/');
      if (seen.has(name)) continue;
      seen.add(name);
      js.set(name, (js.get(name) ?? 0) + 1);
    }
  }
  const top = (m: Map<string, number>) =>
    [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, TOP);
  console.log(
    `\n### ${pid}: outside ONNX Runtime, ${pct(outside.length, list.length || 1)} of its samples\n`,
  );
  console.log('| leaf symbol | share of the process |');
  console.log('|---|---:|');
  for (const [k, n] of top(leaves))
    console.log(`| ${k.replaceAll('|', '\\|')} | ${pct(n, list.length)} |`);
  console.log('\n| JavaScript function (inclusive) | share of the process |');
  console.log('|---|---:|');
  for (const [k, n] of top(js))
    console.log(`| ${k.replaceAll('|', '\\|')} | ${pct(n, list.length)} |`);
}
