// The safetensors format (https://huggingface.co/docs/safetensors): an 8-byte little-endian
// header length N, N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]}} with
// optional "__metadata__", then the data section. Only the header is read on open; tensor
// bytes are read on demand with positioned reads, so a stage never touches another stage's
// layers.
import { open, writeFile, type FileHandle } from 'node:fs/promises';

import { ModelError } from './errors.js';

/** Bytes per element of every dtype the format defines. */
const ELEMENT_BYTES: Readonly<Record<string, number>> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  I64: 8,
  U64: 8,
  F64: 8,
};

// A header larger than this is not a checkpoint header: refuse it before allocating.
const MAX_HEADER_BYTES = 100_000_000;

export interface TensorEntry {
  name: string;
  dtype: string;
  shape: number[];
  file: string;
  dataStart: number; // absolute byte offset of the tensor in `file`
  byteLength: number;
}

export class SafetensorsFile {
  /** Bytes of tensor data read so far (header bytes excluded); lets tests prove laziness. */
  bytesRead = 0;

  private constructor(
    readonly path: string,
    readonly tensors: ReadonlyMap<string, TensorEntry>,
    readonly metadata: Readonly<Record<string, string>>,
    private handle: FileHandle | null,
  ) {}

  /** Reads and validates the header; refuses corrupt or truncated files naming the problem. */
  static async open(path: string): Promise<SafetensorsFile> {
    let handle: FileHandle;
    try {
      handle = await open(path, 'r');
    } catch (cause) {
      throw new ModelError('CHECKPOINT_MISSING', `cannot open ${path}`, { cause });
    }
    try {
      const fileSize = (await handle.stat()).size;
      const corrupt = (why: string) => new ModelError('SAFETENSORS_CORRUPT', `${path}: ${why}`);
      if (fileSize < 8) {
        throw corrupt(`file is ${fileSize} bytes, too short for the 8-byte header length`);
      }
      const lenBuf = Buffer.alloc(8);
      await handle.read(lenBuf, 0, 8, 0);
      const headerLen = Number(lenBuf.readBigUInt64LE(0));
      if (headerLen > MAX_HEADER_BYTES) {
        throw corrupt(`header length ${headerLen} is implausible (limit ${MAX_HEADER_BYTES})`);
      }
      if (8 + headerLen > fileSize) {
        throw corrupt(
          `header length ${headerLen} runs past the end of the ${fileSize}-byte file (truncated?)`,
        );
      }
      const headerBuf = Buffer.alloc(headerLen);
      await handle.read(headerBuf, 0, headerLen, 8);
      let header: unknown;
      try {
        header = JSON.parse(headerBuf.toString('utf8'));
      } catch {
        throw corrupt('header is not valid JSON');
      }
      if (typeof header !== 'object' || header === null || Array.isArray(header)) {
        throw corrupt('header is not a JSON object');
      }
      const dataStart = 8 + headerLen;
      const dataLength = fileSize - dataStart;
      const tensors = new Map<string, TensorEntry>();
      let metadata: Record<string, string> = {};
      const spans: { name: string; begin: number; end: number }[] = [];
      for (const [name, value] of Object.entries(header as Record<string, unknown>)) {
        if (name === '__metadata__') {
          metadata = parseMetadata(value, corrupt);
          continue;
        }
        const entry = parseEntry(name, value, corrupt);
        spans.push({ name, begin: entry.begin, end: entry.end });
        tensors.set(name, {
          name,
          dtype: entry.dtype,
          shape: entry.shape,
          file: path,
          dataStart: dataStart + entry.begin,
          byteLength: entry.end - entry.begin,
        });
      }
      // The format requires the tensors to tile the data section exactly: a hole or an overlap
      // means a corrupt header, a shortfall means a truncated file.
      spans.sort((a, b) => a.begin - b.begin || a.end - b.end);
      let cursor = 0;
      for (const s of spans) {
        if (s.begin < cursor) {
          throw corrupt(`tensor "${s.name}" overlaps the previous tensor's data`);
        }
        if (s.begin > cursor) {
          throw corrupt(`gap of ${s.begin - cursor} bytes before tensor "${s.name}"`);
        }
        cursor = s.end;
      }
      if (cursor > dataLength) {
        const last = spans[spans.length - 1];
        throw corrupt(
          `truncated: tensors need ${cursor} data bytes but the file holds ${dataLength} (tensor "${last.name}" is cut off)`,
        );
      }
      if (cursor < dataLength) {
        throw corrupt(`${dataLength - cursor} trailing bytes after the last tensor`);
      }
      return new SafetensorsFile(path, tensors, metadata, handle);
    } catch (e) {
      await handle.close();
      throw e;
    }
  }

  /** Reads `length` bytes of a tensor starting `offset` bytes into it (default: all of it). */
  async read(name: string, offset = 0, length?: number): Promise<Uint8Array> {
    const out = await this.readRaw(name, offset, length);
    this.bytesRead += out.length;
    return out;
  }

  /** A small read that is not a weight load (fingerprint samples): not counted in bytesRead. */
  peek(name: string, offset: number, length: number): Promise<Uint8Array> {
    return this.readRaw(name, offset, length);
  }

  private async readRaw(name: string, offset = 0, length?: number): Promise<Uint8Array> {
    const entry = this.tensors.get(name);
    if (!entry) throw new ModelError('CHECKPOINT_MISSING', `${this.path} has no tensor "${name}"`);
    const len = length ?? entry.byteLength - offset;
    if (offset < 0 || len < 0 || offset + len > entry.byteLength) {
      throw new RangeError(
        `read of [${offset}, ${offset + len}) outside tensor "${name}" (${entry.byteLength} bytes)`,
      );
    }
    if (!this.handle) this.handle = await open(this.path, 'r');
    const out = new Uint8Array(len);
    let done = 0;
    // One read call is capped near 2 GiB; loop in smaller pieces so huge tensors still load.
    const step = 1 << 30;
    while (done < len) {
      const want = Math.min(step, len - done);
      const { bytesRead } = await this.handle.read(
        out,
        done,
        want,
        entry.dataStart + offset + done,
      );
      if (bytesRead === 0) {
        throw new ModelError(
          'SAFETENSORS_CORRUPT',
          `${this.path}: unexpected end of file while reading tensor "${name}"`,
        );
      }
      done += bytesRead;
    }
    return out;
  }

  async close(): Promise<void> {
    const h = this.handle;
    this.handle = null;
    await h?.close();
  }
}

function parseMetadata(
  value: unknown,
  corrupt: (why: string) => ModelError,
): Record<string, string> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw corrupt('__metadata__ is not an object of strings');
  }
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== 'string') throw corrupt(`__metadata__.${k} is not a string`);
  }
  return value as Record<string, string>;
}

function parseEntry(
  name: string,
  value: unknown,
  corrupt: (why: string) => ModelError,
): { dtype: string; shape: number[]; begin: number; end: number } {
  const v = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown } | null;
  if (typeof v !== 'object' || v === null) throw corrupt(`tensor "${name}" entry is not an object`);
  const { dtype, shape, data_offsets: offsets } = v;
  if (typeof dtype !== 'string' || !(dtype in ELEMENT_BYTES)) {
    throw corrupt(`tensor "${name}" has unknown dtype ${JSON.stringify(dtype)}`);
  }
  const isCount = (x: unknown): x is number => Number.isSafeInteger(x) && (x as number) >= 0;
  if (!Array.isArray(shape) || !shape.every(isCount)) {
    throw corrupt(`tensor "${name}" has an invalid shape ${JSON.stringify(shape)}`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount)) {
    throw corrupt(`tensor "${name}" has invalid data_offsets ${JSON.stringify(offsets)}`);
  }
  const [begin, end] = offsets as [number, number];
  const expected = shape.reduce((a: number, b: number) => a * b, 1) * ELEMENT_BYTES[dtype];
  if (end - begin !== expected) {
    throw corrupt(
      `tensor "${name}" (${dtype} ${JSON.stringify(shape)}) needs ${expected} bytes but data_offsets [${begin}, ${end}] span ${end - begin}`,
    );
  }
  return { dtype, shape, begin, end };
}

export interface TensorToWrite {
  name: string;
  dtype: string;
  shape: number[];
  data: Uint8Array;
}

/** Writes a safetensors file (used by the random-checkpoint writer and by tests). */
export async function writeSafetensors(
  path: string,
  tensors: readonly TensorToWrite[],
  metadata: Record<string, string> = { format: 'pt' },
): Promise<void> {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const t of tensors) {
    header[t.name] = {
      dtype: t.dtype,
      shape: t.shape,
      data_offsets: [offset, offset + t.data.length],
    };
    offset += t.data.length;
  }
  let json = JSON.stringify(header);
  // Pad with spaces so the data section starts 8-byte aligned, as the reference writer does.
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const headerBytes = Buffer.from(json, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(headerBytes.length));
  await writeFile(path, Buffer.concat([len, headerBytes, ...tensors.map((t) => t.data)]));
}
