import {
  checkPipeline,
  parseStageRegistration,
  stageRegistrationSchema,
  type StageRegistration,
} from './registry.js';

function stage(s: number, start: number, end: number, over: Partial<StageRegistration> = {}) {
  return stageRegistrationSchema.parse({
    pipelineId: 'p1',
    stageIndex: s,
    stageCount: 3,
    layerStart: start,
    layerEnd: end,
    numLayers: 10,
    address: `127.0.0.1:${5000 + s}`,
    healthUrl: `http://127.0.0.1:${6000 + s}/health`,
    fingerprint: 'abc',
    ready: true,
    instanceId: `i${s}`,
    pid: 1,
    startedAt: 0,
    heartbeatAt: 0,
    residentBytes: 0,
    downstream: `i${(s + 1) % 3}`,
    ...over,
  });
}

describe('checkPipeline', () => {
  const whole = [stage(0, 0, 4), stage(1, 4, 7), stage(2, 7, 10)];

  it('accepts contiguous ranges covering every layer with one fingerprint', () => {
    const state = checkPipeline('p1', 3, whole);
    expect(state.whole).toBe(true);
  });

  it('names a missing stage', () => {
    const state = checkPipeline('p1', 3, [whole[0], undefined, whole[2]]);
    expect(state).toEqual({ whole: false, problems: ['stage 1 of pipeline p1 is not registered'] });
  });

  it('refuses a gap, an overlap and a short cover', () => {
    const gap = checkPipeline('p1', 3, [whole[0], stage(1, 5, 7), whole[2]]);
    expect(gap.whole).toBe(false);
    if (!gap.whole) expect(gap.problems[0]).toContain('starts at layer 5, expected 4');
    const short = checkPipeline('p1', 3, [whole[0], whole[1], stage(2, 7, 9)]);
    if (short.whole) throw new Error('expected a problem');
    expect(short.problems).toEqual(['the last stage ends at layer 9, the model has 10']);
  });

  it('refuses mismatched fingerprints, stage counts and not-ready stages', () => {
    const state = checkPipeline('p1', 3, [
      whole[0],
      stage(1, 4, 7, { fingerprint: 'zzz', ready: false }),
      stage(2, 7, 10, { stageCount: 4 }),
    ]);
    if (state.whole) throw new Error('expected problems');
    expect(state.problems).toEqual([
      'stage 1 (127.0.0.1:5001) is not ready',
      "stage 1 fingerprint zzz differs from stage 0's abc",
      'stage 2 expects 4 stages, not 3',
    ]);
  });

  it('waits until every stage links to the current process after it', () => {
    // Stage 2 restarted (a new instance), and stage 1 still sends to the old one.
    const restarted = stage(2, 7, 10, { instanceId: 'i2-new' });
    const state = checkPipeline('p1', 3, [whole[0], whole[1], restarted]);
    expect(state).toEqual({
      whole: false,
      problems: ['stage 1 is not linked to the current process of stage 2 yet'],
    });
    const caughtUp = stage(1, 4, 7, { downstream: 'i2-new' });
    expect(checkPipeline('p1', 3, [whole[0], caughtUp, restarted]).whole).toBe(true);
    // The last stage answers the head: a restarted head needs it to catch up too.
    const head = stage(0, 0, 4, { instanceId: 'i0-new' });
    const lost = checkPipeline('p1', 3, [head, whole[1], whole[2]]);
    if (lost.whole) throw new Error('expected a problem');
    expect(lost.problems).toEqual(['stage 2 is not linked to the current process of stage 0 yet']);
  });

  it('rejects an entry whose range is empty or past the model', () => {
    expect(() => stage(0, 4, 4)).toThrow('layer range');
    expect(() => stage(0, 8, 11)).toThrow('layer range');
  });
});

describe('parseStageRegistration', () => {
  it('reads an entry as Redis holds it', () => {
    const entry = stage(1, 4, 7);
    expect(parseStageRegistration(JSON.stringify(entry))).toEqual(entry);
  });

  it('gives nothing for a missing, unparsable or malformed entry', () => {
    expect(parseStageRegistration(null)).toBeUndefined();
    expect(parseStageRegistration('{not json')).toBeUndefined();
    expect(parseStageRegistration(JSON.stringify({ ...stage(1, 4, 7), stageIndex: 5 }))).toBe(
      undefined,
    );
  });
});
