import pg from 'pg';

// PostgreSQL type OIDs of the catalog types `"char"` and `name`. @prisma/adapter-pg 6.19 has
// no column type for them and fails any query returning them; the JS schema engine's
// introspection of pg_catalog returns both (upstream prisma/orm#27403). Their text form is
// the value itself, so reporting them as `text` is exact.
const CHAR_OID = 18;
const NAME_OID = 19;
const TEXT_OID = 25;

export interface PoolOptions {
  /** Let the process exit while idle connections remain (CLIs, tests). */
  allowExitOnIdle?: boolean;
  max?: number;
  /**
   * Called when an idle connection fails (server restart, a database dropped WITH (FORCE)).
   * pg emits these on the pool, and an unhandled one would end the process; the pool itself
   * replaces the connection. Default: a warning on stderr.
   */
  onIdleError?: (error: Error) => void;
}

/** Connection parameters split out of a URL: the adapter's shadow database needs them. */
export function connectionParams(url: string): pg.PoolConfig {
  const u = new URL(url);
  return {
    host: decodeURIComponent(u.hostname),
    port: u.port ? Number(u.port) : 5432,
    user: decodeURIComponent(u.username) || undefined,
    password: u.password ? decodeURIComponent(u.password) : undefined,
    database: decodeURIComponent(u.pathname.replace(/^\//, '')) || undefined,
  };
}

/**
 * A pg pool whose results report `"char"` and `name` columns as text (see above).
 * Built from host/port/user/password/database, never connectionString, so that a copy of
 * its options with another `database` really connects to that database.
 */
export function createPgPool(url: string, options: PoolOptions = {}): pg.Pool {
  const pool = new pg.Pool({
    ...connectionParams(url),
    allowExitOnIdle: options.allowExitOnIdle ?? false,
    max: options.max ?? 10,
  });
  pool.on(
    'error',
    options.onIdleError ??
      ((error: Error) => process.stderr.write(`pg: idle connection failed: ${error.message}\n`)),
  );
  const query = pool.query.bind(pool) as (...args: unknown[]) => Promise<pg.QueryResult>;
  const patched = async (...args: unknown[]) => {
    const result = await query(...args);
    for (const field of result.fields ?? []) {
      if (field.dataTypeID === CHAR_OID || field.dataTypeID === NAME_OID) {
        field.dataTypeID = TEXT_OID;
      }
    }
    return result;
  };
  (pool as unknown as { query: typeof patched }).query = patched;
  return pool;
}
