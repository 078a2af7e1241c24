import { envVar, parseEnv } from '@pipedec/contracts';

/**
 * Where integration tests find PostgreSQL and Redis. The defaults are the services that
 * scripts/setup.sh starts; override to point the tests elsewhere.
 */
export const testEnvShape = {
  TEST_POSTGRES_URL: envVar.url('postgresql://postgres@127.0.0.1:5432/postgres'),
  TEST_REDIS_URL: envVar.url('redis://127.0.0.1:6379'),
};

export type TestEnv = ReturnType<typeof testEnv>;

let cached: ReturnType<typeof parseTestEnv> | undefined;

function parseTestEnv() {
  return parseEnv('testkit', testEnvShape, process.env);
}

/** The test environment, parsed once per process. */
export function testEnv() {
  cached ??= parseTestEnv();
  return cached;
}
