// Every variable the dashboard server reads, parsed once when first needed. Nothing else in
// the dashboard reads process.env.
import { envVar, parseEnv } from '@pipedec/contracts/config';
import { z } from 'zod';

export const dashboardEnvShape = {
  NODE_ENV: envVar.enumOf(['development', 'production', 'test'] as const, 'development'),
  /** Where the dashboard server reaches apps/api. */
  API_URL: envVar.url('http://127.0.0.1:3000'),
  /**
   * The API's origin as admins' browsers reach it, for the live pipelines view's socket.io
   * connection (authenticated by a single-use ticket, never the session). Default: API_URL.
   */
  API_PUBLIC_URL: z.url().optional(),
  /** Milliseconds before a call to the API is abandoned with an error state. */
  API_TIMEOUT_MS: envVar.int(10_000, 100),
  /**
   * Always set the session cookie's Secure flag; without it the flag is set whenever the page
   * is served over HTTPS (X-Forwarded-Proto from the proxy in front).
   */
  SESSION_COOKIE_SECURE: envVar.bool(false),
  /** Shared with the API: lets it believe the browser address the dashboard forwards. */
  DASHBOARD_FORWARD_SECRET: z.string().min(16).optional(),
};

export type DashboardConfig = z.infer<z.ZodObject<typeof dashboardEnvShape>>;

/** The URL of the API's live socket.io namespace, as the browser reaches it. */
export function liveNamespaceUrl(namespace: string): string {
  const c = config();
  return new URL(namespace, c.API_PUBLIC_URL ?? c.API_URL).toString();
}

let cached: DashboardConfig | undefined;

/** The parsed configuration; throws a ConfigError listing every bad variable. */
export function config(): DashboardConfig {
  cached ??= parseEnv('dashboard', dashboardEnvShape, process.env);
  return cached;
}
