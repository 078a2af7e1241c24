// The supervisor of `npm start` against real child processes (a `node -e` program standing in
// for a stage node, its registry entry written for it) and a real Redis: a stage killed with
// SIGKILL leaves the registry at once, announced on its pipeline's channel, instead of one
// registry TTL later; a restarted stage's entry is never removed for its dead predecessor.
import { registryChangedChannel, registryKey, type StageRegistration } from '@pipedec/contracts';
import { deleteRedisPrefix, redisPrefix, testRedis } from '@pipedec/testkit';
import { once } from 'node:events';
import { StageSupervisor } from './stage-supervisor.js';
import { removeDeadStage, reportDeadStages } from './dead-stage.js';

const forever = {
  command: process.execPath,
  args: ['-e', 'setInterval(() => {}, 1000)'],
  env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
};

function entry(stageIndex: number, pid: number): StageRegistration {
  return {
    pipelineId: 'p',
    stageIndex,
    stageCount: 2,
    layerStart: stageIndex,
    layerEnd: stageIndex + 1,
    numLayers: 2,
    address: `127.0.0.1:${5000 + stageIndex}`,
    healthUrl: `http://127.0.0.1:${6000 + stageIndex}/health`,
    fingerprint: 'f',
    ready: true,
    instanceId: `i${pid}`,
    pid,
    startedAt: 0,
    heartbeatAt: 0,
    residentBytes: 0,
    downstream: null,
  };
}

describe('reportDeadStages', () => {
  it("removes a killed stage's entry at once and announces it; a restarted stage's entry stays", async () => {
    const redis = testRedis();
    const sub = testRedis();
    const prefix = redisPrefix();
    const key = registryKey(prefix, 'p', 1);
    const lines: string[] = [];
    const sup = new StageSupervisor(
      [
        { name: 'stage 0', ...forever },
        { name: 'stage 1', ...forever },
      ],
      { initialMs: 10, maxMs: 100, resetAfterMs: 60_000 },
      (l) => lines.push(l),
      'ignore',
    );
    // Each process's entry, as its stage would register it; a minute's TTL, so nothing but
    // the removal can make it go away within this test.
    const written: Promise<unknown>[] = [];
    sup.on('spawn', (i: number, pid: number) => {
      written.push(
        redis.set(registryKey(prefix, 'p', i), JSON.stringify(entry(i, pid)), 'PX', 60_000),
      );
    });
    reportDeadStages(sup, redis, prefix, 'p', (l) => lines.push(l));
    await sub.subscribe(registryChangedChannel(prefix, 'p'));
    sup.start();
    try {
      await Promise.all(written);
      const dead = sup.pid(1)!;
      const announced = once(sub, 'message');
      const respawned = new Promise<number>((resolve) =>
        sup.on('spawn', (i: number, pid: number) => i === 1 && resolve(pid)),
      );
      const killedAt = Date.now();
      process.kill(dead, 'SIGKILL');
      const [, stage] = (await announced) as [string, string];
      // Before: nothing removed it; it stayed until its TTL (REGISTRY_TTL_MS, 3 s by default).
      expect(stage).toBe('1');
      expect(Date.now() - killedAt).toBeLessThan(1000);
      const fresh = await respawned;
      await Promise.all(written);
      expect(JSON.parse((await redis.get(key))!)).toMatchObject({ pid: fresh });
      // A late report for the dead process leaves its successor's entry alone.
      expect(await removeDeadStage(redis, prefix, 'p', 1, dead)).toBe(false);
      expect(JSON.parse((await redis.get(key))!)).toMatchObject({ pid: fresh });
      // The other stage was never touched.
      expect(JSON.parse((await redis.get(registryKey(prefix, 'p', 0)))!)).toMatchObject({
        pid: sup.pid(0),
      });
      expect(lines.join('\n')).toMatch(
        new RegExp(`stage 1 \\(pid ${dead}\\): its registry entry removed`),
      );
    } finally {
      await sup.stop();
      await deleteRedisPrefix(redis, prefix);
      sub.disconnect();
      redis.disconnect();
    }
  });
});
