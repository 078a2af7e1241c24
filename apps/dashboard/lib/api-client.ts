// The dashboard server's only way to the API. It sends the admin session (kept in an
// httpOnly cookie the browser cannot read) as a bearer token, parses every response with a
// schema, and turns failures into typed ApiErrors. Never import it from a client component.
import { errorBodySchema } from '@pipedec/contracts/http';
import { cookies, headers } from 'next/headers';
import { redirect } from 'next/navigation';
import type { z } from 'zod';
import { config } from './config';
import { ApiError, codeForStatus } from './errors';
import { loginPath, PAGE_PATH_HEADER } from './request-origin';

export const SESSION_COOKIE = 'pd_dashboard_session';

export interface RequestOptions {
  body?: unknown;
  query?: Record<string, string | number | undefined | null>;
  /** Use this token instead of the cookie's (login). */
  token?: string | null;
  /** Extra request headers (login forwards the browser's address). */
  headers?: Record<string, string>;
}

export async function sessionToken(): Promise<string | undefined> {
  return (await cookies()).get(SESSION_COOKIE)?.value;
}

export function apiUrl(path: string, query?: RequestOptions['query']): string {
  const url = new URL(path, config().API_URL);
  for (const [k, v] of Object.entries(query ?? {})) {
    if (v !== undefined && v !== null && v !== '') url.searchParams.set(k, String(v));
  }
  return url.toString();
}

/** Calls the API and parses the reply with `schema`; throws ApiError on any failure. */
export async function apiCall<S extends z.ZodType>(
  method: string,
  path: string,
  schema: S,
  options: RequestOptions = {},
): Promise<z.infer<S>> {
  const res = await rawApiCall(method, path, options);
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    throw new ApiError(
      'bad_response',
      `${method} ${path}: the API sent a non-JSON body`,
      res.status,
    );
  }
  if (!res.ok) throw errorFromBody(method, path, res.status, json);
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    throw new ApiError(
      'bad_response',
      `${method} ${path}: unexpected response shape (${parsed.error.issues
        .slice(0, 3)
        .map((i) => `${i.path.join('.')}: ${i.message}`)
        .join('; ')})`,
      res.status,
    );
  }
  return parsed.data;
}

/** The fetch underneath apiCall, for replies that are streams or have no body. */
export async function rawApiCall(
  method: string,
  path: string,
  options: RequestOptions = {},
): Promise<Response> {
  const token = options.token === undefined ? await sessionToken() : options.token;
  const headers: Record<string, string> = { ...options.headers, accept: 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  try {
    return await fetch(apiUrl(path, options.query), {
      method,
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      cache: 'no-store',
      signal: AbortSignal.timeout(config().API_TIMEOUT_MS),
    });
  } catch (error) {
    throw new ApiError(
      'unreachable',
      `${method} ${path}: the API at ${config().API_URL} did not answer (${String(error)})`,
      null,
    );
  }
}

export function errorFromBody(method: string, path: string, status: number, json: unknown) {
  const body = errorBodySchema.safeParse(json);
  const message = body.success ? body.data.error.message : `status ${status}`;
  // Nest answers an unknown route with "Cannot GET /x": the endpoint is not built yet.
  const missingRoute = status === 404 && /^Cannot [A-Z]+ /.test(message);
  return new ApiError(
    missingRoute ? 'not_available' : codeForStatus(status),
    `Request failed with status ${status}: ${method} ${path}: ${message}`,
    status,
    body.success ? body.data.error.code : null,
  );
}

/**
 * apiCall for server components: an expired or missing session sends the admin to the login
 * page (with a note that the session ended) instead of rendering an error.
 */
export async function load<S extends z.ZodType>(
  path: string,
  schema: S,
  query?: RequestOptions['query'],
): Promise<z.infer<S>> {
  try {
    return await apiCall('GET', path, schema, { query });
  } catch (error) {
    if (error instanceof ApiError && error.code === 'unauthenticated') {
      // With a cookie, the session existed and ended; without one, the admin never signed in.
      // The page asked for comes back after sign-in (proxy.ts passes it in PAGE_PATH_HEADER).
      redirect(loginPath(Boolean(await sessionToken()), (await headers()).get(PAGE_PATH_HEADER)));
    }
    throw error;
  }
}

/** Like load, but returns the error instead of throwing it, for pages with partial data. */
export async function tryLoad<S extends z.ZodType>(
  path: string,
  schema: S,
  query?: RequestOptions['query'],
): Promise<{ ok: true; data: z.infer<S> } | { ok: false; error: ApiError }> {
  try {
    return { ok: true, data: await load(path, schema, query) };
  } catch (error) {
    if (error instanceof ApiError) return { ok: false, error };
    throw error;
  }
}
