// POST /pipelines/live-ticket: a single-use ticket for the API's live socket.io namespace,
// bought with the admin's session (the httpOnly cookie, which the page's scripts cannot
// read). The page asks for a fresh one before every connection attempt, reconnects included.
import { apiCall, sessionToken } from '@/lib/api-client';
import { ApiError } from '@/lib/errors';
import { liveTicketSchema } from '@pipedec/contracts/http';

export const dynamic = 'force-dynamic';

export async function POST(): Promise<Response> {
  try {
    if (!(await sessionToken())) throw new ApiError('unauthenticated', 'sign in first', 401);
    const ticket = await apiCall('POST', '/admin/live/tickets', liveTicketSchema);
    return Response.json(ticket, { headers: { 'cache-control': 'no-store' } });
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    return Response.json(
      { error: { code: error.code, message: error.message } },
      { status: error.code === 'unauthenticated' ? 401 : 502 },
    );
  }
}
