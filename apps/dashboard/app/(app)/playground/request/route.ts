// GET /playground/request?tenant=&id=: a finished playground run's statistics (decoding
// method used, and for auto what it weighed; timesteps, tokens per timestep, hit rate, time split, tokens) from the API, for
// the comparison table.
import { jobStatusSchema, type TimeSplit } from '@pipedec/contracts/http';
import { z } from 'zod';
import { apiCall } from '@/lib/api-client';
import { ApiError } from '@/lib/errors';

export const dynamic = 'force-dynamic';

export interface RunStats {
  status: string;
  /** The method that decoded it: the one named, or auto's choice. */
  method: string;
  /** Its tree width (PipeDec) or per-level budget (STPP); 1 for PP; null before it started. */
  width: number | null;
  /** Why: "requested", or auto's reason ("fastest", "explore", "untried"). */
  reason: string | null;
  /** auto only: each candidate's estimated ms per token when it chose ("stpp/w2", "pp", ...). */
  estimates: Record<string, number> | null;
  accounted: boolean;
  completionTokens: number | null;
  timesteps: number | null;
  tokensPerTimestep: number | null;
  hitRate: number | null;
  time: TimeSplit | null;
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
      jobStatusSchema,
    );
    const stats: RunStats = {
      status: r.status,
      method: r.decoding?.method ?? r.method,
      width: r.decoding?.width ?? null,
      reason: r.decoding?.reason ?? null,
      estimates: r.decoding?.estimates ?? null,
      accounted: r.usage !== null,
      completionTokens: r.usage?.completion_tokens ?? null,
      timesteps: r.stats?.timesteps ?? null,
      tokensPerTimestep: r.stats?.tokensPerTimestep ?? null,
      hitRate: r.stats?.hitRate ?? null,
      time: r.stats?.time ?? null,
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
