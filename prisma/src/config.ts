import { envVar, parseEnv } from '@pipedec/contracts';

/** Variables read by the database package's own entry points (migrate, seed). */
export const dbEnvShape = {
  DATABASE_URL: envVar.url('postgresql://postgres@127.0.0.1:5432/pipedec'),
};

export type DbConfig = ReturnType<typeof parseDbConfig>;

export function parseDbConfig(env: Record<string, string | undefined>) {
  return parseEnv('db', dbEnvShape, env);
}
