import type { RequestEvent } from '@pipedec/contracts';
import type { Redis } from 'ioredis';
import { JobEventStream } from './job-events.js';

/** A connection that answers commands in order, when told to, failing the ones named. */
class OrderedFake {
  readonly sent: string[][] = [];
  private readonly answers: (() => void)[] = [];
  constructor(private readonly failAt: ReadonlySet<number> = new Set()) {}

  xadd(...args: string[]): Promise<string> {
    return this.command(['xadd', ...args]);
  }
  expire(...args: (string | number)[]): Promise<number> {
    return this.command(['expire', ...args.map(String)]) as unknown as Promise<number>;
  }
  /** Answers every command sent so far, in order. */
  answerAll(): void {
    for (const a of this.answers.splice(0)) a();
  }
  private command(args: string[]): Promise<string> {
    const n = this.sent.push(args) - 1;
    return new Promise((resolve, reject) =>
      this.answers.push(() =>
        this.failAt.has(n) ? reject(new Error(`command ${n}`)) : resolve('ok'),
      ),
    );
  }
}

const token = (index: number): RequestEvent => ({
  type: 'token',
  index,
  tokenId: 5,
  text: 'a',
  timestep: index,
  at: 1,
});

describe('a request event stream', () => {
  it('sends the events in order and flush waits for every answer', async () => {
    const redis = new OrderedFake();
    const stream = new JobEventStream(redis as unknown as Redis, 'k');
    stream.append({
      type: 'started',
      attempt: 1,
      pipelineId: 'p',
      decoding: { method: 'pp', width: 1, depth: 0, reason: 'requested' },
      at: 1,
    });
    for (let i = 0; i < 3; i++) stream.append(token(i));
    expect(redis.sent.map((c) => c[0])).toEqual(['xadd', 'expire', 'xadd', 'xadd', 'xadd']);
    expect(redis.sent.slice(2).map((c) => (JSON.parse(c[4]) as { index: number }).index)).toEqual([
      0, 1, 2,
    ]);
    let flushed = false;
    const flush = stream.flush().then(() => (flushed = true));
    await Promise.resolve();
    expect(flushed).toBe(false);
    redis.answerAll();
    await flush;
    expect(flushed).toBe(true);
  });

  it('flush throws the first failed command even when later ones succeeded, then starts clean', async () => {
    const redis = new OrderedFake(new Set([1, 2]));
    const stream = new JobEventStream(redis as unknown as Redis, 'k');
    for (let i = 0; i < 4; i++) stream.append(token(i));
    redis.answerAll();
    await expect(stream.flush()).rejects.toThrow('command 1');
    stream.append(token(4));
    redis.answerAll();
    await expect(stream.flush()).resolves.toBeUndefined();
  });
});
