// GET /pipelines/stream: the live pipeline state as server-sent events. The dashboard server
// subscribes to the API's socket.io namespace with the admin's session (the token never
// reaches the browser) and relays each snapshot. If the socket cannot connect, it polls
// (lib/pipelines.ts) instead and says so.
import { io, type Socket } from 'socket.io-client';
import { sessionToken } from '@/lib/api-client';
import { config } from '@/lib/config';
import { ApiError } from '@/lib/errors';
import { loadPipelines } from '@/lib/pipelines';
import { pipelinesSnapshotSchema } from '@/lib/schemas';
import type { StreamStatus } from '../stream-status';

export const dynamic = 'force-dynamic';

const PIPELINES_NAMESPACE = '/admin/pipelines';
const SNAPSHOT_EVENT = 'snapshot';
const POLL_MS = 2_000;
const HEARTBEAT_MS = 15_000;

export async function GET(request: Request): Promise<Response> {
  const token = await sessionToken();
  if (!token) return new Response('sign in first\n', { status: 401 });
  const encoder = new TextEncoder();
  let socket: Socket | null = null;
  let poll: ReturnType<typeof setInterval> | null = null;
  let heartbeat: ReturnType<typeof setInterval> | null = null;
  let closed = false;

  const stop = () => {
    closed = true;
    socket?.close();
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

      const pollOnce = async () => {
        try {
          send('snapshot', await loadPipelines(token));
        } catch (error) {
          const reason = error instanceof ApiError ? error.message : String(error);
          status({ mode: 'none', connected: false, reason });
          if (error instanceof ApiError && error.code === 'unauthenticated') {
            send('expired', {});
            stop();
            controller.close();
          }
        }
      };
      const startPolling = (reason: string) => {
        if (poll || closed) return;
        status({ mode: 'polling', connected: true, reason });
        void pollOnce();
        poll = setInterval(() => void pollOnce(), POLL_MS);
      };

      socket = io(new URL(PIPELINES_NAMESPACE, config().API_URL).toString(), {
        auth: { token },
        transports: ['websocket'],
        reconnectionAttempts: 3,
        timeout: 5_000,
      });
      socket.on('connect', () => {
        if (poll) clearInterval(poll);
        poll = null;
        status({ mode: 'socket', connected: true });
      });
      socket.on(SNAPSHOT_EVENT, (raw: unknown) => {
        const snap = pipelinesSnapshotSchema.safeParse(raw);
        if (snap.success) send('snapshot', snap.data);
        else
          status({ mode: 'none', connected: false, reason: 'the API sent a malformed snapshot' });
      });
      socket.on('connect_error', (e: Error) => startPolling(`socket.io: ${e.message}`));
      socket.on('disconnect', (reason: string) =>
        startPolling(`socket.io disconnected: ${reason}`),
      );
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
