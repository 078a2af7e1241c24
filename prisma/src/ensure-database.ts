// Creates the database named in DATABASE_URL when it does not exist yet, so that
// `npm run db:migrate` works on a fresh PostgreSQL (the JS schema engine cannot create it).
import { loadEnvOrExit } from '@pipedec/contracts';
import { dbEnvShape } from './config.js';
import { connectionParams, createPgPool } from './pg-pool.js';

const { DATABASE_URL } = loadEnvOrExit('db', dbEnvShape, process.env);
const database = connectionParams(DATABASE_URL).database;
if (!database) {
  process.stderr.write('db: DATABASE_URL names no database\n');
  process.exit(1);
}
const server = new URL(DATABASE_URL);
server.pathname = '/postgres';
const pool = createPgPool(server.toString(), { max: 1, allowExitOnIdle: true });
try {
  const found = await pool.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
  if (found.rowCount === 0) {
    await pool.query(`CREATE DATABASE "${database.replaceAll('"', '""')}"`);
    process.stdout.write(`db: created database ${database}\n`);
  }
} finally {
  await pool.end();
}
