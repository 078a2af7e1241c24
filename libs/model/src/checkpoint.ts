// A checkpoint directory in the Hugging Face layout, opened without reading weights: config,
// the tensor index over one or many safetensors files, the fingerprint, and on-demand f32
// loading of exactly the tensors a stage asks for.
import { createHash } from 'node:crypto';
import { readFile, access } from 'node:fs/promises';
import path from 'node:path';

import { parseLlamaConfig, type LlamaConfig } from './config.js';
import { isWeightDtype, toFloat32, DTYPE_BYTES } from './dtype.js';
import { ModelError } from './errors.js';
import { SafetensorsFile, type TensorEntry } from './safetensors.js';
import type { ModelInfo } from './shard.js';
import { expectedTensors } from './tensor-names.js';

export class Checkpoint {
  private constructor(
    readonly dir: string,
    readonly config: LlamaConfig,
    readonly info: ModelInfo,
    readonly tensors: ReadonlyMap<string, TensorEntry>,
    private readonly files: ReadonlyMap<string, SafetensorsFile>,
  ) {}

  static async open(dir: string): Promise<Checkpoint> {
    const configPath = path.join(dir, 'config.json');
    const configText = await readText(configPath);
    const config = parseLlamaConfig(parseJson(configText, configPath), configPath);
    const generation = await readOptionalJson(path.join(dir, 'generation_config.json'));
    const files = await openWeightFiles(dir);
    try {
      const tensors = await indexTensors(dir, files);
      validateTensors(config, tensors);
      const fingerprint = await computeFingerprint(configText, tensors, files);
      const info: ModelInfo = {
        vocabSize: config.vocabSize,
        hiddenSize: config.hiddenSize,
        numLayers: config.numLayers,
        maxPositions: config.maxPositions,
        bosTokenId: generationInt(generation, 'bos_token_id') ?? config.bosTokenId,
        eosTokenIds: generationIds(generation, 'eos_token_id') ?? config.eosTokenIds,
        fingerprint,
      };
      return new Checkpoint(dir, config, info, tensors, files);
    } catch (e) {
      await Promise.all([...files.values()].map((f) => f.close()));
      throw e;
    }
  }

  /** Loads a whole tensor as f32 (converting f16/bf16). */
  async loadF32(name: string): Promise<Float32Array> {
    const entry = this.entry(name);
    const bytes = await this.files.get(entry.file)!.read(name);
    return toFloat32(bytes, entry.dtype as 'F32' | 'F16' | 'BF16');
  }

  /**
   * Streams a tensor as f32 in pieces of at most `maxElements` elements, so tensors larger
   * than one JS array (a 128k x 8k embedding) can still be written out.
   */
  async *readF32Chunks(name: string, maxElements = 1 << 24): AsyncGenerator<Float32Array> {
    const entry = this.entry(name);
    const dtype = entry.dtype as 'F32' | 'F16' | 'BF16';
    const elemBytes = DTYPE_BYTES[dtype];
    const file = this.files.get(entry.file)!;
    for (let off = 0; off < entry.byteLength; off += maxElements * elemBytes) {
      const len = Math.min(maxElements * elemBytes, entry.byteLength - off);
      yield toFloat32(await file.read(name, off, len), dtype);
    }
  }

  /** Tensor data bytes read from disk so far, over every file. */
  bytesRead(): number {
    let n = 0;
    for (const f of this.files.values()) n += f.bytesRead;
    return n;
  }

  async close(): Promise<void> {
    await Promise.all([...this.files.values()].map((f) => f.close()));
  }

  private entry(name: string): TensorEntry {
    const entry = this.tensors.get(name);
    if (!entry) throw new ModelError('CHECKPOINT_MISSING', `${this.dir}: no tensor "${name}"`);
    return entry;
  }
}

async function readText(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (cause) {
    throw new ModelError('CHECKPOINT_MISSING', `cannot read ${file}`, { cause });
  }
}

function parseJson(text: string, file: string): unknown {
  try {
    return JSON.parse(text);
  } catch (cause) {
    throw new ModelError('CONFIG_INVALID', `${file} is not valid JSON`, { cause });
  }
}

async function readOptionalJson(file: string): Promise<Record<string, unknown> | null> {
  try {
    await access(file);
  } catch {
    return null;
  }
  const v = parseJson(await readText(file), file);
  return typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : null;
}

function generationInt(g: Record<string, unknown> | null, key: string): number | undefined {
  const v = g?.[key];
  return Number.isInteger(v) ? (v as number) : undefined;
}

function generationIds(g: Record<string, unknown> | null, key: string): number[] | undefined {
  const v = g?.[key];
  if (Number.isInteger(v)) return [v as number];
  if (Array.isArray(v) && v.length && v.every((x) => Number.isInteger(x))) return v as number[];
  return undefined;
}

async function exists(file: string): Promise<boolean> {
  try {
    await access(file);
    return true;
  } catch {
    return false;
  }
}

/** Opens the weight files the layout names: a sharded index, else model.safetensors. */
async function openWeightFiles(dir: string): Promise<Map<string, SafetensorsFile>> {
  const indexPath = path.join(dir, 'model.safetensors.index.json');
  let names: string[];
  if (await exists(indexPath)) {
    const index = parseJson(await readText(indexPath), indexPath) as {
      weight_map?: Record<string, unknown>;
    };
    const map = index.weight_map;
    if (typeof map !== 'object' || map === null) {
      throw new ModelError('SAFETENSORS_CORRUPT', `${indexPath} has no "weight_map" object`);
    }
    names = [...new Set(Object.values(map))].map((f) => {
      if (typeof f !== 'string' || f.includes('/') || f.includes('\\')) {
        throw new ModelError('SAFETENSORS_CORRUPT', `${indexPath}: bad file name ${String(f)}`);
      }
      return f;
    });
  } else if (await exists(path.join(dir, 'model.safetensors'))) {
    names = ['model.safetensors'];
  } else {
    throw new ModelError(
      'CHECKPOINT_MISSING',
      `${dir} has neither model.safetensors nor model.safetensors.index.json`,
    );
  }
  const files = new Map<string, SafetensorsFile>();
  try {
    for (const name of names.sort()) {
      const full = path.join(dir, name);
      files.set(full, await SafetensorsFile.open(full));
    }
  } catch (e) {
    await Promise.all([...files.values()].map((f) => f.close()));
    throw e;
  }
  return files;
}

async function indexTensors(
  dir: string,
  files: ReadonlyMap<string, SafetensorsFile>,
): Promise<Map<string, TensorEntry>> {
  const indexPath = path.join(dir, 'model.safetensors.index.json');
  const tensors = new Map<string, TensorEntry>();
  if (files.size === 1 && files.has(path.join(dir, 'model.safetensors'))) {
    for (const [name, entry] of files.get(path.join(dir, 'model.safetensors'))!.tensors) {
      tensors.set(name, entry);
    }
    return tensors;
  }
  const index = JSON.parse(await readFile(indexPath, 'utf8')) as {
    weight_map: Record<string, string>;
  };
  for (const [name, file] of Object.entries(index.weight_map)) {
    const entry = files.get(path.join(dir, file))?.tensors.get(name);
    if (!entry) {
      throw new ModelError(
        'SAFETENSORS_CORRUPT',
        `${indexPath} maps tensor "${name}" to ${file}, which does not contain it`,
      );
    }
    tensors.set(name, entry);
  }
  return tensors;
}

function validateTensors(config: LlamaConfig, tensors: ReadonlyMap<string, TensorEntry>): void {
  for (const { name, shape } of expectedTensors(config)) {
    const entry = tensors.get(name);
    if (!entry) {
      throw new ModelError('CHECKPOINT_MISSING', `checkpoint lacks tensor "${name}"`);
    }
    if (!isWeightDtype(entry.dtype)) {
      throw new ModelError(
        'DTYPE_UNSUPPORTED',
        `tensor "${name}" is ${entry.dtype}; supported weight dtypes are F32, F16 and BF16`,
      );
    }
    if (entry.shape.length !== shape.length || entry.shape.some((d, i) => d !== shape[i])) {
      throw new ModelError(
        'SHAPE_MISMATCH',
        `tensor "${name}" has shape [${entry.shape.join(', ')}] but config.json implies [${shape.join(', ')}]`,
      );
    }
  }
}

/**
 * sha256 over config.json and the tensor index (name, dtype, shape), plus the first and last
 * 32 bytes of every tensor: two checkpoints with equal shapes but different weights (random
 * test models, fine-tunes) must not share cached graphs. The samples are tiny reads, so no
 * stage loads weights it does not hold.
 */
async function computeFingerprint(
  configText: string,
  tensors: ReadonlyMap<string, TensorEntry>,
  files: ReadonlyMap<string, SafetensorsFile>,
): Promise<string> {
  const hash = createHash('sha256');
  hash.update(canonicalJson(JSON.parse(configText)));
  for (const name of [...tensors.keys()].sort()) {
    const e = tensors.get(name)!;
    hash.update(`\n${name}|${e.dtype}|${e.shape.join('x')}|`);
    const file = files.get(e.file)!;
    const n = Math.min(32, e.byteLength);
    hash.update(await file.peek(name, 0, n));
    hash.update(await file.peek(name, e.byteLength - n, n));
  }
  return hash.digest('hex');
}

function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (typeof v === 'object' && v !== null) {
    const entries = Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${canonicalJson(x)}`).join(',')}}`;
  }
  return JSON.stringify(v);
}
