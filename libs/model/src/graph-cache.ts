// Built stage graphs cached on disk, keyed by checkpoint fingerprint, layer range, compute
// dtype, graph version and variant (`-p`: with the draft's proposal outputs, onnx-graph.ts). A build goes to a private temporary folder that is renamed into
// place, so concurrent stages on one host never see a half-written graph.
import { randomBytes } from 'node:crypto';
import { access, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import type { Checkpoint } from './checkpoint.js';
import {
  buildStageGraph,
  GRAPH_VERSION,
  MODEL_FILE,
  WEIGHTS_FILE,
  type GraphOptions,
} from './onnx-graph.js';

export interface CachedGraph {
  modelPath: string;
  weightBytes: number;
  built: boolean; // false when an existing cache entry was reused
}

const DONE_FILE = 'complete.json';

export function graphCacheKey(
  fingerprint: string,
  layerStart: number,
  layerEnd: number,
  opts: GraphOptions = {},
): string {
  const variant = opts.proposals ? '-p' : '';
  return `${fingerprint.slice(0, 24)}-L${layerStart}-${layerEnd}-f32-g${GRAPH_VERSION}${variant}`;
}

export async function ensureGraph(
  ckpt: Checkpoint,
  layerStart: number,
  layerEnd: number,
  cacheDir: string,
  opts: GraphOptions = {},
): Promise<CachedGraph> {
  const key = graphCacheKey(ckpt.info.fingerprint, layerStart, layerEnd, opts);
  const dir = path.join(cacheDir, key);
  const modelPath = path.join(dir, MODEL_FILE);
  const existing = await readDone(dir);
  if (existing) return { modelPath, weightBytes: existing.weightBytes, built: false };

  await mkdir(cacheDir, { recursive: true });
  const tmp = `${dir}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  await mkdir(tmp);
  try {
    const { weightBytes } = await buildStageGraph(ckpt, layerStart, layerEnd, tmp, opts);
    await writeFile(
      path.join(tmp, DONE_FILE),
      JSON.stringify({ weightBytes, fingerprint: ckpt.info.fingerprint }),
    );
    try {
      await rename(tmp, dir);
    } catch {
      if (await readDone(dir)) {
        // Another process finished the same build first: use theirs.
        await rm(tmp, { recursive: true, force: true });
      } else {
        // A broken entry (e.g. weights.bin deleted by hand): replace it.
        await rm(dir, { recursive: true, force: true });
        await rename(tmp, dir);
      }
    }
    return { modelPath, weightBytes, built: true };
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
}

async function readDone(dir: string): Promise<{ weightBytes: number } | null> {
  try {
    const done = JSON.parse(await readFile(path.join(dir, DONE_FILE), 'utf8')) as {
      weightBytes: number;
    };
    const size = (await stat(path.join(dir, WEIGHTS_FILE))).size;
    await access(path.join(dir, MODEL_FILE));
    return size === done.weightBytes ? done : null;
  } catch {
    return null;
  }
}

/** <repo>/.cache/onnx when run inside a checkout (a folder with package-lock.json), else tmp. */
export async function defaultCacheDir(): Promise<string> {
  let dir = process.cwd();
  for (;;) {
    try {
      await access(path.join(dir, 'package-lock.json'));
      return path.join(dir, '.cache', 'onnx');
    } catch {
      const parent = path.dirname(dir);
      if (parent === dir) return path.join(os.tmpdir(), 'pipedec-onnx');
      dir = parent;
    }
  }
}
