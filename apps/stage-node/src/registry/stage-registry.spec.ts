import type { StageRegistration } from '@pipedec/contracts';
import { Redis, type RedisOptions } from 'ioredis';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { StageRegistry } from './stage-registry.js';

const ENTRY: StageRegistration = {
  pipelineId: 'p',
  stageIndex: 0,
  stageCount: 2,
  layerStart: 0,
  layerEnd: 1,
  numLayers: 2,
  address: '127.0.0.1:1',
  healthUrl: 'http://127.0.0.1:1/health',
  fingerprint: 'f',
  ready: true,
  instanceId: 'i',
  pid: 1,
  startedAt: 0,
  heartbeatAt: 0,
  residentBytes: 0,
  downstream: null,
};

/** A port nothing listens on: the OS hands it out, the test closes it again. */
async function closedPort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  return port;
}

describe('StageRegistry', () => {
  it('releases the subscription when Redis is down at deregistration', async () => {
    const options: RedisOptions = {
      port: await closedPort(),
      host: '127.0.0.1',
      enableOfflineQueue: false,
      retryStrategy: () => 10,
      disconnectTimeout: 50, // the refused socket never closes again: no 2 s wait on it
    };
    const redis = new Redis(options);
    redis.on('error', () => undefined);
    // The subscriber the registry makes (it inherits the unreachable address).
    let sub: Redis | null = null;
    const duplicate = redis.duplicate.bind(redis);
    redis.duplicate = (override?: Partial<RedisOptions>) => (sub = duplicate(override));
    try {
      const registry = new StageRegistry(redis, 'test:', () => ENTRY, 5_000, 1_000);
      registry.watch('p', () => undefined);
      sub!.on('error', () => undefined);
      await expect(registry.deregister()).rejects.toThrow();
      // A subscriber left behind (maxRetriesPerRequest: null) retries every 10 ms for ever,
      // keeping the process alive: the registry ends it (ioredis's 'end': no reconnection
      // follows). Left behind, it never ends and the test times out.
      sub!.on('error', () => undefined);
      if (sub!.status !== 'end') await once(sub!, 'end');
      expect(sub!.status).toBe('end');
    } finally {
      redis.disconnect();
    }
  });
});
