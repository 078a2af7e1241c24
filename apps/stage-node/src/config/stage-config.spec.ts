import { ConfigError } from '@pipedec/contracts';
import { defaultKvBytes, parseStageConfig } from './stage-config.js';

const base = { STAGE_INDEX: '1', STAGE_COUNT: '4', CHECKPOINT_DIR: '/m/target' };

describe('parseStageConfig', () => {
  it('applies defaults: even split, fp32 on the wire, queue "generation"', () => {
    const c = parseStageConfig(base);
    expect(c).toMatchObject({
      pipelineId: 'local',
      stageIndex: 1,
      stageCount: 4,
      layerRange: 'even',
      grpcListen: '127.0.0.1:50051',
      grpcAdvertise: '127.0.0.1:50051',
      wireDtype: 'FP32',
      queueName: 'generation',
      queueConcurrency: 1,
      relayLostCancelMs: 2000,
      draftScoreTemperature: 0.5,
      // PipeDec's refills fill this pipeline: as many layers as it has stages ...
      pipeDecRefillLayers: 4,
      rowBudget: 16,
      speculateMaxInFlight: 3,
      carryDecisions: true,
      runtimeDistributions: true,
      // One request per call; with more, as many groups as stages (a stage per host).
      batch: { requests: 1, rows: 64, lanes: 4 },
    });
    expect(parseStageConfig({ ...base, STAGE_LANES: '2' }).batch.lanes).toBe(2);
    expect(parseStageConfig({ ...base, CARRY_DECISIONS: 'false' }).carryDecisions).toBe(false);
    expect(parseStageConfig({ ...base, RUNTIME_DISTRIBUTIONS: 'false' }).runtimeDistributions).toBe(
      false,
    );
    expect(parseStageConfig({ ...base, PIPEDEC_REFILL_LAYERS: '1' }).pipeDecRefillLayers).toBe(1);
    // ... at most 7 layers on a deeper pipeline.
    expect(parseStageConfig({ ...base, STAGE_COUNT: '14' }).pipeDecRefillLayers).toBe(7);
    expect(parseStageConfig({ ...base, SPECULATE_MAX_IN_FLIGHT: '16' }).speculateMaxInFlight).toBe(
      16,
    );
  });

  it('puts frames on a socket by default, on the gRPC host, and on gRPC when asked', () => {
    expect(parseStageConfig({ ...base, GRPC_LISTEN: '0.0.0.0:7000' }).frames).toEqual({
      listen: '0.0.0.0:0',
      advertise: null,
    });
    const fixed = parseStageConfig({
      ...base,
      FRAMES_LISTEN: '10.0.0.2:7100',
      FRAMES_ADVERTISE: 'proxy:7200',
    });
    expect(fixed.frames).toEqual({ listen: '10.0.0.2:7100', advertise: 'proxy:7200' });
    expect(parseStageConfig({ ...base, FRAME_TRANSPORT: 'grpc' }).frames).toBeNull();
    expect(() => parseStageConfig({ ...base, FRAME_TRANSPORT: 'udp' })).toThrow('FRAME_TRANSPORT');
    expect(() => parseStageConfig({ ...base, FRAMES_LISTEN: '7100' })).toThrow('FRAMES_LISTEN');
  });

  it('reads an explicit layer range and fp16', () => {
    const c = parseStageConfig({ ...base, LAYER_START: '4', LAYER_END: '8', WIRE_DTYPE: 'fp16' });
    expect(c.layerRange).toEqual({ layerStart: 4, layerEnd: 8 });
    expect(c.wireDtype).toBe('FP16');
  });

  it('lists every bad variable at once, cross-variable rules included', () => {
    let caught: unknown;
    try {
      parseStageConfig({
        STAGE_INDEX: '0',
        STAGE_COUNT: 'x',
        LAYER_START: '3',
        GRPC_LISTEN: 'nope',
        QUEUE_CONCURRENCY: '0',
        DRAFT_SCORE_TEMPERATURE: '0',
        SPECULATE_MAX_IN_FLIGHT: '0',
        STAGE_LANES: '0',
        PIPEDEC_REFILL_LAYERS: '0',
      });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    const vars = (caught as ConfigError).issues.map((i) => i.variable).sort();
    expect(vars).toEqual([
      'CHECKPOINT_DIR',
      'DRAFT_CHECKPOINT_DIR',
      'DRAFT_SCORE_TEMPERATURE',
      'GRPC_LISTEN',
      'LAYER_START',
      'PIPEDEC_REFILL_LAYERS',
      'QUEUE_CONCURRENCY',
      'SPECULATE_MAX_IN_FLIGHT',
      'STAGE_COUNT',
      'STAGE_LANES',
    ]);
  });

  it('refuses a stage index past the count and a head without a draft', () => {
    expect(() => parseStageConfig({ ...base, STAGE_INDEX: '4' })).toThrow('must be < STAGE_COUNT');
    expect(() => parseStageConfig({ ...base, STAGE_INDEX: '0' })).toThrow('DRAFT_CHECKPOINT_DIR');
    expect(
      parseStageConfig({ ...base, STAGE_INDEX: '0', DRAFT_CHECKPOINT_DIR: '/m/d' })
        .draftCheckpointDir,
    ).toBe('/m/d');
  });
});

describe('defaultKvBytes', () => {
  it('holds 16 full context windows, at most an eighth of the host', () => {
    // Demo model on 4 stages: 2 KiB a row, 1,024 positions.
    expect(defaultKvBytes(2048, 1024, 16 * 2 ** 30)).toBe(16 * 1024 * 2048);
    // Llama 3 8B's 8 layers a stage: 64 KiB a row, 131,072 positions, a 64 GiB host.
    expect(defaultKvBytes(65536, 131072, 64 * 2 ** 30)).toBe(8 * 2 ** 30);
  });
});
