import type { StageRegistration } from '@pipedec/contracts';
import type { LayerShard } from '@pipedec/model';
import type { StageConfig } from '../config/stage-config.js';
import type { StageRegistry } from '../registry/stage-registry.js';
import { StageNode } from './stage-node.js';

const INFO = {
  vocabSize: 8,
  hiddenSize: 2,
  numLayers: 2,
  maxPositions: 64,
  bosTokenId: 0,
  eosTokenIds: [],
  fingerprint: 'f',
};

const CONFIG = {
  pipelineId: 'p',
  stageIndex: 0,
  stageCount: 2,
  grpcAdvertise: '127.0.0.1:1',
  healthHost: '127.0.0.1',
  healthPort: 1,
  wireDtype: 'FP32',
  registryTtlMs: 5_000,
  pipelineCheckMs: 60_000,
  packetTimeoutMs: 5_000,
} as StageConfig;

/** The head's shard; never asked to compute here. */
const shard = {
  info: INFO,
  layerStart: 0,
  layerEnd: 1,
  isFirst: true,
  isLast: false,
  memory: () => ({
    kvBytes: 0,
    kvLimitBytes: Infinity,
    kvBytesPerRow: 16,
    weightBytes: 0,
    sequences: 0,
  }),
} as unknown as LayerShard;

/** Stage 1, registered at an address nothing listens on. */
const STAGE1: StageRegistration = {
  pipelineId: 'p',
  stageIndex: 1,
  stageCount: 2,
  layerStart: 1,
  layerEnd: 2,
  numLayers: 2,
  address: '127.0.0.1:2',
  healthUrl: 'http://127.0.0.1:2/health',
  fingerprint: 'f',
  ready: true,
  instanceId: 'stage-1',
  pid: 2,
  startedAt: 0,
  heartbeatAt: 0,
  residentBytes: 0,
  downstream: null,
};

/**
 * A registry whose reads answer when the test says (those at start at once, and empty).
 * An announcement arrives while the head leaves (another stage changed at the same time).
 */
function fakeRegistry() {
  const reads: ((entries: (StageRegistration | undefined)[]) => void)[] = [];
  let heard = (): void => undefined;
  let started = false;
  const registry = {
    watch: (_pipelineId: string, onChange: () => void) => {
      heard = onChange;
      return { listening: () => true };
    },
    start: () => Promise.resolve(),
    beat: () => Promise.resolve(),
    deregister: () => {
      heard();
      return Promise.resolve();
    },
    read: () =>
      started
        ? new Promise<(StageRegistration | undefined)[]>((r) => reads.push(r))
        : Promise.resolve([undefined, undefined]),
  };
  return {
    registry: registry as unknown as StageRegistry,
    begin: () => (started = true),
    /** Answers every read pending. */
    answer: async (entries: (StageRegistration | undefined)[]) => {
      for (const r of reads.splice(0)) r(entries);
      await new Promise((resolve) => setImmediate(resolve));
    },
  };
}

describe('StageNode', () => {
  it('dials no peer for a registry read an announcement starts while the head leaves', async () => {
    const node = new StageNode(CONFIG, shard);
    const f = fakeRegistry();
    await node.start(f.registry);
    f.begin();
    await node.stop();
    await f.answer([undefined, STAGE1]);
    expect(node.registration().downstream).toBeNull();
  });

  it('dials no peer for a registry read that finishes after stop()', async () => {
    const node = new StageNode(CONFIG, shard);
    const f = fakeRegistry();
    await node.start(f.registry);
    f.begin();
    // Not whole yet: the job's check reads the registry, and stop() does not wait for it.
    const whole = node.wholeNow();
    await node.stop();
    await f.answer([undefined, STAGE1]);
    expect(await whole).toBe(false);
    expect(node.registration().downstream).toBeNull();
  });
});
