// The supervisor against real child processes (small `node -e` programs standing in for stage
// nodes): a process that dies unasked is started again after a doubling backoff, each exit is
// logged, and stop() ends them all without another restart.
import { once } from 'node:events';
import { StageSupervisor, type ExitRecord } from './stage-supervisor.js';

const env = { PATH: process.env.PATH ?? '/usr/bin:/bin' };
/** Runs until killed. */
const forever = { command: process.execPath, args: ['-e', 'setInterval(() => {}, 1000)'], env };
/** Exits with code 3 at once. */
const crashing = { command: process.execPath, args: ['-e', 'process.exit(3)'], env };

function nextExit(sup: StageSupervisor): Promise<ExitRecord> {
  return once(sup, 'exit').then(([r]) => r as ExitRecord);
}

describe('StageSupervisor', () => {
  it('restarts a killed process, logs it, and leaves the others alone', async () => {
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
    sup.start();
    const before = [sup.pid(0), sup.pid(1)];
    expect(before.every((p) => typeof p === 'number')).toBe(true);
    try {
      const exit = nextExit(sup);
      const respawn = new Promise<[number, number]>((resolve) =>
        sup.on('spawn', (i: number, pid: number) => i === 1 && resolve([i, pid])),
      );
      process.kill(before[1]!, 'SIGKILL');
      const record = await exit;
      expect(record).toMatchObject({
        index: 1,
        name: 'stage 1',
        signal: 'SIGKILL',
        code: null,
        restartInMs: 10,
        restarts: 1,
      });
      const [, pid] = await respawn;
      expect(pid).not.toBe(before[1]);
      expect(sup.pid(1)).toBe(pid);
      expect(sup.pid(0)).toBe(before[0]);
      expect(sup.restarts(0)).toBe(0);
      expect(lines.join('\n')).toMatch(
        /stage 1 \(pid \d+\) exited on SIGKILL .* restarting in 10 ms/,
      );
    } finally {
      await sup.stop();
    }
    expect(sup.pid(0)).toBeUndefined();
    expect(sup.pid(1)).toBeUndefined();
  });

  it('doubles the delay for a process that keeps dying, up to the maximum', async () => {
    const sup = new StageSupervisor(
      [{ name: 'stage 2', ...crashing }],
      { initialMs: 5, maxMs: 20, resetAfterMs: 60_000 },
      () => undefined,
      'ignore',
    );
    const delays: number[] = [];
    const five = new Promise<void>((resolve) =>
      sup.on('exit', (r: ExitRecord) => {
        expect(r.code).toBe(3);
        delays.push(r.restartInMs);
        if (delays.length === 5) resolve();
      }),
    );
    sup.start();
    await five;
    await sup.stop();
    expect(delays).toEqual([5, 10, 20, 20, 20]);
  });

  it('does not restart what stop() ended', async () => {
    const sup = new StageSupervisor(
      [{ name: 'stage 0', ...forever }],
      { initialMs: 1, maxMs: 1, resetAfterMs: 60_000 },
      () => undefined,
      'ignore',
    );
    sup.start();
    let exits = 0;
    let spawns = 0;
    sup.on('exit', () => exits++);
    sup.on('spawn', () => spawns++);
    await sup.stop();
    expect([exits, spawns, sup.pid(0)]).toEqual([0, 0, undefined]);
  });
});
