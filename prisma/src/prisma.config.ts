// Prisma CLI configuration (passed with --config): migrations run on the JavaScript schema
// engine over a pg driver adapter, since the native engine cannot be downloaded here.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'prisma/config';
import { parseDbConfig } from './config.js';
import { migrationAdapterFactory } from './migrate-adapter.js';

unrefLongTimers();

const packageDir = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const { DATABASE_URL } = parseDbConfig(process.env);
// schema.prisma's datasource names env("DATABASE_URL"); give it the parsed value (default
// included), since the CLI loads no .env file once a config file is present.
process.env.DATABASE_URL = DATABASE_URL;

export default defineConfig({
  experimental: { adapter: true },
  schema: path.join(packageDir, 'schema.prisma'),
  migrations: { path: path.join(packageDir, 'migrations') },
  engine: 'js',
  adapter: () => Promise.resolve(migrationAdapterFactory(DATABASE_URL)),
});

/**
 * The WASM schema engine arms a 10 s timer that it never clears, which keeps the CLI alive
 * 10 s after its work is done. Timers this long only guard against hangs, so letting them
 * not hold the process open changes nothing else. This file is loaded by the CLI only.
 */
function unrefLongTimers(): void {
  const original = globalThis.setTimeout;
  const patched = (handler: () => void, ms?: number) => {
    const timer = original(handler, ms);
    if ((ms ?? 0) >= 5000) timer.unref();
    return timer;
  };
  globalThis.setTimeout = Object.assign<typeof patched, typeof setTimeout>(patched, original);
}
