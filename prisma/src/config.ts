import { envVar, parseEnv } from '@pipedec/contracts';
import { z } from 'zod';

/** Variables read by the database package's own entry points (migrate, seed). */
export const dbEnvShape = {
  DATABASE_URL: envVar.url('postgresql://postgres@127.0.0.1:5432/pipedec'),
};

/** Variables of `npm run db:seed` (the demo tenant, its key and the admin user). */
export const seedEnvShape = {
  ...dbEnvShape,
  NODE_ENV: envVar.enumOf(['development', 'production', 'test'] as const, 'development'),
  SEED_ADMIN_EMAIL: z.email().default('admin@pipedec.local'),
  SEED_ADMIN_PASSWORD: z.string().min(8).default('pipedec-admin'),
};

export type DbConfig = ReturnType<typeof parseDbConfig>;

export function parseDbConfig(env: Record<string, string | undefined>) {
  return parseEnv('db', dbEnvShape, env);
}
