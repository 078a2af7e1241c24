// Every variable the dashboard server reads, parsed once when first needed. Nothing else in
// the dashboard reads process.env.
import { envVar, parseEnv } from '@pipedec/contracts/config';
import { z } from 'zod';

export const dashboardEnvShape = {
  NODE_ENV: envVar.enumOf(['development', 'production', 'test'] as const, 'development'),
  /** Where the dashboard server reaches apps/api (never exposed to the browser). */
  API_URL: envVar.url('http://127.0.0.1:3000'),
  /** Milliseconds before a call to the API is abandoned with an error state. */
  API_TIMEOUT_MS: envVar.int(10_000, 100),
  /** Set the session cookie's Secure flag (on behind HTTPS). */
  SESSION_COOKIE_SECURE: envVar.bool(false),
};

export type DashboardConfig = z.infer<z.ZodObject<typeof dashboardEnvShape>>;

let cached: DashboardConfig | undefined;

/** The parsed configuration; throws a ConfigError listing every bad variable. */
export function config(): DashboardConfig {
  cached ??= parseEnv('dashboard', dashboardEnvShape, process.env);
  return cached;
}
