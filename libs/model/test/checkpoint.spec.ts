// Reading checkpoints: dtype conversion, lazy per-stage loading, and refusal of corrupt,
// truncated or mismatched files with errors that name the file, tensor and shapes.
import { readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';

import { fromFloat32, toFloat32 } from '../src/dtype.js';
import {
  Checkpoint,
  ModelError,
  OnnxShard,
  ReferenceModel,
  SafetensorsFile,
  openShard,
  writeSafetensors,
} from '../src/index.js';
import { tempDir, tinyCheckpoint } from './helpers.js';

async function refusal(open: () => Promise<unknown>): Promise<ModelError> {
  try {
    await open();
  } catch (e) {
    if (e instanceof ModelError) return e;
    throw e;
  }
  throw new Error('accepted');
}

describe('dtype conversion', () => {
  const values = Float32Array.from([1, -2.5, 0.1, 65504, 1e5, 3e-7, 0]);
  it('encodes f16 and bf16 bit patterns as torch does (round to nearest even)', () => {
    const f16 = new Uint16Array(fromFloat32(values, 'F16').buffer);
    expect(Array.from(f16, (h) => h.toString(16))).toEqual([
      '3c00',
      'c100',
      '2e66',
      '7bff',
      '7c00',
      '5',
      '0',
    ]);
    const bf16 = new Uint16Array(fromFloat32(values, 'BF16').buffer);
    expect(Array.from(bf16, (h) => h.toString(16))).toEqual([
      '3f80',
      'c020',
      '3dcd',
      '4780',
      '47c3',
      '34a1',
      '0',
    ]);
  });
  it('decodes back to f32', () => {
    expect(Array.from(toFloat32(fromFloat32(values, 'F16'), 'F16'))).toEqual([
      1,
      -2.5,
      0.0999755859375,
      65504,
      Infinity,
      2.980232238769531e-7,
      0,
    ]);
    expect(Array.from(toFloat32(fromFloat32(values, 'BF16'), 'BF16'))).toEqual([
      1, -2.5, 0.10009765625, 65536, 99840, 2.998858690261841e-7, 0,
    ]);
    expect(toFloat32(fromFloat32(values, 'F32'), 'F32')).toEqual(values);
  });
});

describe('checkpoints', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  let good: string;
  beforeAll(async () => {
    tmp = await tempDir('ckpt');
    good = await tinyCheckpoint(tmp.dir, 'good', { layers: 4 });
  });
  afterAll(() => tmp.cleanup());

  /** A copy of the good checkpoint with one file replaced. */
  async function variant(
    name: string,
    file: string,
    edit: (bytes: Buffer) => Buffer | string,
  ): Promise<string> {
    const dir = await tinyCheckpoint(tmp.dir, name, { layers: 4 });
    const target = path.join(dir, file);
    await writeFile(target, edit(await readFile(target)));
    return dir;
  }

  it('a middle stage reads only its own layers, and nothing when the graph is cached', async () => {
    const ckpt = await Checkpoint.open(good);
    const layer2 = [...ckpt.tensors.values()].filter((t) => t.name.startsWith('model.layers.2.'));
    const layer2Bytes = layer2.reduce((a, t) => a + t.byteLength, 0);
    await ckpt.close();
    const fileBytes = (await stat(path.join(good, 'model.safetensors'))).size;
    expect(layer2Bytes * 6).toBeLessThan(fileBytes);

    const ref = await ReferenceModel.open({ checkpointDir: good, layerStart: 2, layerEnd: 3 });
    expect(ref.checkpointBytesRead).toBe(layer2Bytes);
    await ref.close();
    const cacheDir = path.join(tmp.dir, 'onnx-lazy');
    const built = await OnnxShard.open({
      checkpointDir: good,
      layerStart: 2,
      layerEnd: 3,
      cacheDir,
    });
    expect([built.graphBuilt, built.checkpointBytesRead]).toEqual([true, layer2Bytes]);
    await built.close();
    const cached = await OnnxShard.open({
      checkpointDir: good,
      layerStart: 2,
      layerEnd: 3,
      cacheDir,
    });
    expect([cached.graphBuilt, cached.checkpointBytesRead]).toEqual([false, 0]);
    await cached.close();
  });

  it('the first stage reads the embedding and its layers, the last its layers, norm and head', async () => {
    const ckpt = await Checkpoint.open(good);
    const bytes = (pred: (n: string) => boolean) =>
      [...ckpt.tensors.values()].filter((t) => pred(t.name)).reduce((a, t) => a + t.byteLength, 0);
    await ckpt.close();
    const first = await ReferenceModel.open({ checkpointDir: good, layerStart: 0, layerEnd: 1 });
    expect(first.checkpointBytesRead).toBe(
      bytes((n) => n.startsWith('model.layers.0.') || n === 'model.embed_tokens.weight'),
    );
    const last = await ReferenceModel.open({ checkpointDir: good, layerStart: 3, layerEnd: 4 });
    expect(last.checkpointBytesRead).toBe(
      bytes(
        (n) =>
          n.startsWith('model.layers.3.') || n === 'model.norm.weight' || n === 'lm_head.weight',
      ),
    );
    await Promise.all([first.close(), last.close()]);
  });

  it.each<[string, string, (b: Buffer) => Buffer | string, string, RegExp]>([
    [
      'a truncated file',
      'model.safetensors',
      (b) => b.subarray(0, b.length - 100),
      'SAFETENSORS_CORRUPT',
      /truncated: tensors need \d+ data bytes but the file holds \d+ \(tensor "[^"]+" is cut off\)/,
    ],
    [
      'a file cut inside the header',
      'model.safetensors',
      (b) => b.subarray(0, 50),
      'SAFETENSORS_CORRUPT',
      /header length \d+ runs past the end of the 50-byte file/,
    ],
    [
      'a file shorter than the length prefix',
      'model.safetensors',
      (b) => b.subarray(0, 5),
      'SAFETENSORS_CORRUPT',
      /5 bytes, too short/,
    ],
    [
      'an absurd header length',
      'model.safetensors',
      (b) => {
        const c = Buffer.from(b);
        c.writeBigUInt64LE(1n << 40n, 0);
        return c;
      },
      'SAFETENSORS_CORRUPT',
      /header length 1099511627776 is implausible/,
    ],
    [
      'a header that is not JSON',
      'model.safetensors',
      (b) => {
        const c = Buffer.from(b);
        c[8] = 0x78;
        return c;
      },
      'SAFETENSORS_CORRUPT',
      /header is not valid JSON/,
    ],
    [
      'trailing bytes',
      'model.safetensors',
      (b) => Buffer.concat([b, Buffer.alloc(8)]),
      'SAFETENSORS_CORRUPT',
      /8 trailing bytes after the last tensor/,
    ],
    [
      'a config.json that is not JSON',
      'config.json',
      () => '{"vocab_size": ',
      'CONFIG_INVALID',
      /config.json is not valid JSON/,
    ],
    [
      'an unsupported rope in config.json',
      'config.json',
      (b) =>
        JSON.stringify({
          ...JSON.parse(b.toString()),
          rope_scaling: { rope_type: 'dynamic', factor: 2 },
        }),
      'CONFIG_UNSUPPORTED',
      /rope_scaling type "dynamic"/,
    ],
    [
      'a config whose shapes disagree with the weights',
      'config.json',
      (b) => JSON.stringify({ ...JSON.parse(b.toString()), intermediate_size: 80 }),
      'SHAPE_MISMATCH',
      /tensor "model.layers.0.mlp.gate_proj.weight" has shape \[64, 32\] but config.json implies \[80, 32\]/,
    ],
    [
      'an untied config without lm_head',
      'config.json',
      (b) =>
        JSON.stringify({
          ...JSON.parse(b.toString()),
          tie_word_embeddings: false,
          vocab_size: 300,
        }),
      'CHECKPOINT_MISSING',
      /lacks tensor "lm_head.weight"/,
    ],
  ])('refuses %s', async (name, file, edit, code, message) => {
    const dir = await variant(name.replace(/\W+/g, '-'), file, edit);
    const forChecks = name === 'an untied config without lm_head' ? await tiedVariant(dir) : dir;
    for (const open of [
      () => ReferenceModel.open({ checkpointDir: forChecks }),
      () => openShard({ checkpointDir: forChecks, cacheDir: path.join(tmp.dir, 'onnx-bad') }),
    ]) {
      const err = await refusal(open);
      expect(err.code).toBe(code);
      expect(err.message).toMatch(message);
    }
  });

  /** Rewrites a checkpoint as tied (no lm_head) but keeps the edited, untied config.json. */
  async function tiedVariant(dir: string): Promise<string> {
    const config = await readFile(path.join(dir, 'config.json'), 'utf8');
    const tied = await tinyCheckpoint(tmp.dir, 'tied-src', { layers: 4, tied: true });
    await writeFile(path.join(tied, 'config.json'), config);
    return tied;
  }

  it('refuses unsupported dtypes, inconsistent headers and broken shard indexes, naming the tensor', async () => {
    const dir = path.join(tmp.dir, 'handmade');
    await rm(dir, { recursive: true, force: true });
    await tinyCheckpoint(tmp.dir, 'handmade', { layers: 4 });
    const original = await SafetensorsFile.open(path.join(dir, 'model.safetensors'));
    const tensors = await Promise.all(
      [...original.tensors.values()].map(async (t) => ({
        name: t.name,
        dtype: t.dtype,
        shape: t.shape,
        data: await original.read(t.name),
      })),
    );
    await original.close();
    const file = path.join(dir, 'model.safetensors');

    const asF64 = tensors.map((t) =>
      t.name === 'model.norm.weight'
        ? { ...t, dtype: 'F64', data: new Uint8Array(t.data.length * 4) }
        : t,
    );
    await writeSafetensors(file, asF64);
    let err = await refusal(() => Checkpoint.open(dir));
    expect([err.code, err.message]).toEqual([
      'DTYPE_UNSUPPORTED',
      'DTYPE_UNSUPPORTED: tensor "model.norm.weight" is F64; supported weight dtypes are F32, F16 and BF16',
    ]);

    const badSize = tensors.map((t) =>
      t.name === 'model.norm.weight' ? { ...t, data: t.data.subarray(4) } : t,
    );
    await writeSafetensors(file, badSize);
    err = await refusal(() => Checkpoint.open(dir));
    expect(err.message).toMatch(
      /tensor "model.norm.weight" \(BF16 \[32\]\) needs 64 bytes but data_offsets \[\d+, \d+\] span 60/,
    );

    const unknownDtype = tensors.map((t) =>
      t.name === 'model.norm.weight' ? { ...t, dtype: 'F128' } : t,
    );
    await writeSafetensors(file, unknownDtype);
    err = await refusal(() => Checkpoint.open(dir));
    expect(err.message).toMatch(/tensor "model.norm.weight" has unknown dtype "F128"/);

    // Two files with an index that maps a tensor to the wrong file.
    await rm(file);
    await writeSafetensors(path.join(dir, 'a.safetensors'), tensors.slice(0, 5));
    await writeSafetensors(path.join(dir, 'b.safetensors'), tensors.slice(5));
    const weightMap = Object.fromEntries(
      tensors.map((t, i) => [t.name, i < 5 ? 'a.safetensors' : 'b.safetensors']),
    );
    await writeFile(
      path.join(dir, 'model.safetensors.index.json'),
      JSON.stringify({ weight_map: weightMap }),
    );
    const sharded = await Checkpoint.open(dir);
    expect(sharded.info.numLayers).toBe(4);
    await sharded.close();
    weightMap[tensors[0].name] = 'b.safetensors';
    await writeFile(
      path.join(dir, 'model.safetensors.index.json'),
      JSON.stringify({ weight_map: weightMap }),
    );
    err = await refusal(() => Checkpoint.open(dir));
    expect(err.message).toMatch(
      new RegExp(
        `maps tensor "${tensors[0].name.replace(/\./g, '\\.')}" to b.safetensors, which does not contain it`,
      ),
    );
    await truncate(path.join(dir, 'b.safetensors'), 1000);
    err = await refusal(() => Checkpoint.open(dir));
    expect(err.code).toBe('SAFETENSORS_CORRUPT');
    expect(err.message).toContain('b.safetensors');

    await rm(path.join(dir, 'model.safetensors.index.json'));
    err = await refusal(() => Checkpoint.open(dir));
    expect(err.code).toBe('CHECKPOINT_MISSING');
  });

  it('fingerprints weights, not only shapes, and refuses bad layer ranges', async () => {
    const other = await tinyCheckpoint(tmp.dir, 'other-seed', { layers: 4, seed: 99 });
    const [a, b, a2] = await Promise.all([
      Checkpoint.open(good),
      Checkpoint.open(other),
      Checkpoint.open(good),
    ]);
    expect(a.info.fingerprint).toMatch(/^[0-9a-f]{64}$/);
    expect(a.info.fingerprint).toBe(a2.info.fingerprint);
    expect(a.info.fingerprint).not.toBe(b.info.fingerprint);
    await Promise.all([a.close(), b.close(), a2.close()]);
    for (const [layerStart, layerEnd] of [
      [3, 3],
      [-1, 2],
      [2, 5],
    ]) {
      const err = await refusal(() =>
        ReferenceModel.open({ checkpointDir: good, layerStart, layerEnd }),
      );
      expect(err.code).toBe('LAYER_RANGE_INVALID');
      expect(err.message).toContain(`[${layerStart}, ${layerEnd})`);
    }
  });
});
