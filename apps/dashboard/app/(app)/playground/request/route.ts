// GET /playground/request?tenant=&id=: a finished playground run's statistics (decoding
// method used, timesteps, hit rate, tokens) from the API, for the comparison table.
import { z } from 'zod';
import { apiCall } from '@/lib/api-client';
import { ApiError } from '@/lib/errors';

export const dynamic = 'force-dynamic';

const requestViewSchema = z.object({
  id: z.string(),
  status: z.string(),
  method: z.string(),
  decoding: z.object({ method: z.string() }).passthrough().nullable(),
  output: z.string(),
  usage: z.object({ completion_tokens: z.number() }).nullable(),
  stats: z.object({ timesteps: z.number().nullable(), hitRate: z.number().nullable() }),
});

export interface RunStats {
  status: string;
  /** The method that decoded it: the one named, or auto's choice. */
  method: string;
  accounted: boolean;
  completionTokens: number | null;
  timesteps: number | null;
  hitRate: number | null;
  output: string;
}

const UUID = z.uuid();

export async function GET(request: Request): Promise<Response> {
  const q = new URL(request.url).searchParams;
  const tenant = UUID.safeParse(q.get('tenant'));
  const id = UUID.safeParse(q.get('id'));
  if (!tenant.success || !id.success) {
    return Response.json({ error: { message: 'Name a tenant and a request.' } }, { status: 400 });
  }
  try {
    const r = await apiCall(
      'GET',
      `/admin/tenants/${tenant.data}/requests/${id.data}`,
      requestViewSchema,
    );
    const stats: RunStats = {
      status: r.status,
      method: r.decoding?.method ?? r.method,
      accounted: r.usage !== null,
      completionTokens: r.usage?.completion_tokens ?? null,
      timesteps: r.stats.timesteps,
      hitRate: r.stats.hitRate,
      output: r.output,
    };
    return Response.json(stats, { headers: { 'cache-control': 'no-store' } });
  } catch (error) {
    if (error instanceof ApiError) {
      return Response.json(
        { error: { message: 'The run’s statistics could not be loaded.' } },
        { status: error.code === 'unauthenticated' ? 401 : 502 },
      );
    }
    throw error;
  }
}
