import { z } from 'zod';

/** One environment variable that failed validation, with the reason in words. */
export interface EnvIssue {
  variable: string;
  message: string;
}

/** Thrown by parseEnv when one or more variables are invalid; lists every one, not the first. */
export class ConfigError extends Error {
  readonly code = 'CONFIG_INVALID';
  constructor(
    readonly app: string,
    readonly issues: EnvIssue[],
  ) {
    super(
      `${app}: invalid configuration:\n` +
        issues.map((i) => `  ${i.variable}: ${i.message}`).join('\n'),
    );
    this.name = 'ConfigError';
  }
}

type EnvShape = Record<string, z.ZodType>;

/**
 * Parses environment variables into a typed object. Keys of `shape` are variable names;
 * each schema supplies its own default. Unset and empty variables count as missing, so a
 * blank line in .env falls back to the default instead of failing as "".
 */
export function parseEnv<S extends EnvShape>(
  app: string,
  shape: S,
  env: Record<string, string | undefined>,
): z.infer<z.ZodObject<S>> {
  const input: Record<string, string | undefined> = {};
  for (const key of Object.keys(shape)) {
    const value = env[key];
    input[key] = value === undefined || value === '' ? undefined : value;
  }
  const result = z.object(shape).safeParse(input);
  if (result.success) return result.data;
  const issues = result.error.issues.map((issue) => ({
    variable: issue.path.map(String).join('.') || '(root)',
    message: issue.message,
  }));
  throw new ConfigError(app, issues);
}

/**
 * parseEnv for a process entry point: on failure prints every invalid variable and exits
 * with status 1, so a misconfigured deployment fails at boot with the whole list.
 */
export function loadEnvOrExit<S extends EnvShape>(
  app: string,
  shape: S,
  env: Record<string, string | undefined>,
): z.infer<z.ZodObject<S>> {
  try {
    return parseEnv(app, shape, env);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }
}

/** Reusable variable schemas, so every app spells the same kind of value the same way. */
export const envVar = {
  url: (fallback: string) => z.url().default(fallback),
  port: (fallback: number) => z.coerce.number().int().min(0).max(65535).default(fallback),
  int: (fallback: number, min = 0) => z.coerce.number().int().min(min).default(fallback),
  bool: (fallback: boolean) =>
    z
      .enum(['true', 'false', '1', '0'])
      .default(fallback ? 'true' : 'false')
      .transform((v) => v === 'true' || v === '1'),
  string: (fallback: string) => z.string().min(1).default(fallback),
  enumOf: <const T extends readonly [string, ...string[]]>(values: T, fallback: T[number]) =>
    z.enum(values).default(fallback),
};
