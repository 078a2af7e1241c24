// POST /playground/stream: runs one completion as the chosen key and relays the API's
// server-sent events (OpenAI completion chunks) to the browser as they arrive. The API
// authenticates the admin session and acts as the key, applying its status, scopes, quotas
// and usage accounting exactly as for a tenant's own request.
import { errorBodySchema } from '@pipedec/contracts/http';
import { apiCall, errorFromBody, rawApiCall, sessionToken } from '@/lib/api-client';
import { ApiError } from '@/lib/errors';
import { adminMeSchema } from '@/lib/schemas';
import { playgroundRequestSchema } from '../playground-request';

export const dynamic = 'force-dynamic';

const UNREACHABLE = 'The service did not answer. Check that it is running, then try again.';

export async function POST(request: Request): Promise<Response> {
  // Only a signed-in admin may use the playground; checked here too so an ended session gets
  // a clear message before any request body is read.
  try {
    if (!(await sessionToken())) throw new ApiError('unauthenticated', 'sign in first', 401);
    await apiCall('GET', '/admin/me', adminMeSchema);
  } catch (error) {
    if (error instanceof ApiError) {
      const unauthenticated = error.code === 'unauthenticated';
      return Response.json(
        {
          error: {
            message: unauthenticated
              ? 'Your admin session has ended. Sign in again, then send the prompt again.'
              : UNREACHABLE,
          },
        },
        { status: unauthenticated ? 401 : 502 },
      );
    }
    throw error;
  }
  const input = playgroundRequestSchema.safeParse(await request.json().catch(() => null));
  if (!input.success) {
    return Response.json(
      {
        error: {
          message: input.error.issues.map((i) => i.message).join(' '),
        },
      },
      { status: 400 },
    );
  }
  const r = input.data;
  // The API acts as the key on the admin's behalf (its status, scopes, quotas and billing).
  const path = `/admin/tenants/${r.tenantId}/keys/${r.keyId}/completions`;
  let upstream: Response;
  try {
    upstream = await rawApiCall('POST', path, {
      body: {
        model: r.model,
        prompt: r.prompt,
        max_tokens: r.maxTokens,
        temperature: 0,
        seed: r.seed,
        decoding_method: r.method,
        stream: true,
        stream_options: { include_usage: true },
      },
    });
  } catch (error) {
    if (error instanceof ApiError) {
      return Response.json({ error: { message: UNREACHABLE } }, { status: 502 });
    }
    throw error;
  }
  if (!upstream.ok || !upstream.body) {
    const text = await upstream.text();
    let json: unknown = null;
    try {
      json = JSON.parse(text);
    } catch {
      // not JSON: reported by status below
    }
    // The API's own sentence for the operator, never the internal route it was sent to.
    const error = errorFromBody('POST', path, upstream.status, json);
    const body = errorBodySchema.safeParse(json);
    const message = body.success
      ? body.data.error.message
      : `The service answered with status ${upstream.status}. Try again in a moment.`;
    return Response.json(
      { error: { message, code: error.code, apiCode: error.apiCode } },
      { status: upstream.status },
    );
  }
  return new Response(upstream.body, {
    headers: {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store, no-transform',
    },
  });
}
