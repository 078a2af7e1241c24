// GET /pipelines/stream: the live pipeline state as server-sent events. The API has no
// socket.io namespace for pipeline updates (only /v1/stream for completions), so the dashboard
// server polls GET /admin/pipelines every POLL_MS with the admin's session (the token never
// reaches the browser) and relays each snapshot.
import { sessionToken } from '@/lib/api-client';
import { ApiError } from '@/lib/errors';
import { loadPipelines } from '@/lib/pipelines';
import type { StreamStatus } from '../stream-status';

export const dynamic = 'force-dynamic';

const POLL_MS = 2_000;
const HEARTBEAT_MS = 15_000;

export async function GET(request: Request): Promise<Response> {
  const token = await sessionToken();
  if (!token) return new Response('sign in first\n', { status: 401 });
  const encoder = new TextEncoder();
  let poll: ReturnType<typeof setInterval> | null = null;
  let heartbeat: ReturnType<typeof setInterval> | null = null;
  let closed = false;

  const stop = () => {
    closed = true;
    if (poll) clearInterval(poll);
    if (heartbeat) clearInterval(heartbeat);
  };

  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      const send = (event: string, data: unknown) => {
        if (closed) return;
        try {
          controller.enqueue(encoder.encode(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`));
        } catch {
          stop();
        }
      };
      const status = (s: StreamStatus) => send('status', s);

      // After a failed poll the next good one says the view is live again.
      let failing = false;
      const pollOnce = async () => {
        try {
          const snapshot = await loadPipelines(token);
          if (failing) status({ mode: 'polling', connected: true });
          failing = false;
          send('snapshot', snapshot);
        } catch (error) {
          failing = true;
          const reason = error instanceof ApiError ? error.message : String(error);
          status({ mode: 'none', connected: false, reason });
          if (error instanceof ApiError && error.code === 'unauthenticated') {
            send('expired', {});
            stop();
            controller.close();
          }
        }
      };
      status({ mode: 'polling', connected: true });
      void pollOnce();
      poll = setInterval(() => void pollOnce(), POLL_MS);
      // Comments keep proxies from closing an idle stream.
      heartbeat = setInterval(() => {
        if (!closed) controller.enqueue(encoder.encode(': keep-alive\n\n'));
      }, HEARTBEAT_MS);
      request.signal.addEventListener('abort', () => {
        stop();
        try {
          controller.close();
        } catch {
          // already closed
        }
      });
    },
    cancel() {
      stop();
    },
  });
  return new Response(stream, {
    headers: {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store, no-transform',
      connection: 'keep-alive',
    },
  });
}
