import { Logger, type OnModuleDestroy } from '@nestjs/common';
import {
  ConnectedSocket,
  MessageBody,
  type OnGatewayInit,
  SubscribeMessage,
  WebSocketGateway,
} from '@nestjs/websockets';
import { ADMIN_LIVE, liveSubscribeSchema, type LiveRefusal } from '@pipedec/contracts';
import type { Namespace, Socket } from 'socket.io';
import { AdminAuthService } from '../admin-auth/admin-auth.service.js';
import { Clock } from '../infra/clock.js';
import { PipelinesService } from '../pipelines/pipelines.service.js';
import { LiveTickets } from './live-tickets.service.js';
import { issuesMessage } from '../common/parse-body.js';

/** How often subscribers get a pipelines snapshot. */
export const LIVE_INTERVAL_MS = 1_000;
/** How often a connection's admin session is checked again (logout, expiry, disabled admin). */
export const SESSION_RECHECK_MS = 5_000;

const ROOM = 'pipelines';

interface LiveSession {
  sessionId: string;
  checkedAt: number; // epoch ms
}

function refuse(code: LiveRefusal, message: string): Error {
  return Object.assign(new Error(message), { data: { code } });
}

/**
 * The admins' live namespace (contract: ADMIN_LIVE in @pipedec/contracts/http). A connection
 * is admitted by a single-use ticket (POST /admin/live/tickets) and lives as long as the admin
 * session the ticket came from. One snapshot is read per interval, for all subscribers
 * together, and only while anyone is subscribed.
 */
@WebSocketGateway({ namespace: ADMIN_LIVE.namespace })
export class LiveGateway implements OnGatewayInit, OnModuleDestroy {
  private readonly logger = new Logger('LiveGateway');
  private readonly sessions = new WeakMap<Socket, LiveSession>();
  private server: Namespace | null = null;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(
    private readonly tickets: LiveTickets,
    private readonly admins: AdminAuthService,
    private readonly pipelines: PipelinesService,
    private readonly clock: Clock,
  ) {}

  afterInit(server: Namespace): void {
    this.server = server;
    // Authentication before the connection is accepted: a refusal reaches the client as
    // connect_error with data.code, and nothing else is ever sent to it.
    server.use((socket, next) => {
      void this.admit(socket).then(
        () => next(),
        (error: unknown) => next(error instanceof Error ? error : new Error(String(error))),
      );
    });
  }

  onModuleDestroy(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private async admit(socket: Socket): Promise<void> {
    const ticket = (socket.handshake.auth as { ticket?: unknown }).ticket;
    if (typeof ticket !== 'string' || ticket === '') {
      throw refuse('missing_ticket', 'Missing ticket: connect with auth { ticket }');
    }
    const sessionId = await this.tickets.redeem(ticket);
    if (!sessionId) throw refuse('invalid_ticket', 'Unknown, used or expired ticket');
    try {
      await this.admins.authenticateSession(sessionId);
    } catch {
      throw refuse('session_ended', 'The admin session has ended');
    }
    this.sessions.set(socket, { sessionId, checkedAt: this.clock.nowMs() });
  }

  @SubscribeMessage(ADMIN_LIVE.subscribe)
  async subscribe(@ConnectedSocket() client: Socket, @MessageBody() body: unknown) {
    const parsed = liveSubscribeSchema.safeParse(body);
    if (!parsed.success) {
      return {
        ok: false,
        error: {
          code: 'invalid_body',
          message: issuesMessage(parsed.error.issues),
        },
      };
    }
    await client.join(ROOM);
    // The first snapshot at once, not after up to one interval.
    await this.pipelines.snapshot().then(
      (snap) => client.emit(ADMIN_LIVE.pipelines, snap),
      (error: unknown) => client.emit(ADMIN_LIVE.failure, { message: messageOf(error) }),
    );
    this.schedule();
    return { ok: true };
  }

  private schedule(): void {
    if (this.timer || this.stopped) return;
    this.timer = setTimeout(() => {
      void this.tick().finally(() => {
        this.timer = null;
        if (this.subscribers().length > 0) this.schedule();
      });
    }, LIVE_INTERVAL_MS);
  }

  private subscribers(): Socket[] {
    const ids = this.server?.adapter.rooms.get(ROOM);
    if (!ids) return [];
    return [...ids].flatMap((id) => this.server?.sockets.get(id) ?? []);
  }

  private async tick(): Promise<void> {
    await this.recheckSessions();
    const sockets = this.subscribers();
    if (sockets.length === 0 || !this.server) return;
    try {
      this.server.to(ROOM).emit(ADMIN_LIVE.pipelines, await this.pipelines.snapshot());
    } catch (error) {
      this.logger.warn(`pipelines snapshot failed: ${messageOf(error)}`);
      this.server.to(ROOM).emit(ADMIN_LIVE.failure, { message: messageOf(error) });
    }
  }

  /** Closes the connections whose admin session has ended since they were last checked. */
  private async recheckSessions(): Promise<void> {
    const now = this.clock.nowMs();
    const due = [...(this.server?.sockets.values() ?? [])].filter(
      (s) => now - (this.sessions.get(s)?.checkedAt ?? 0) >= SESSION_RECHECK_MS,
    );
    await Promise.all(
      due.map(async (socket) => {
        const session = this.sessions.get(socket);
        try {
          if (!session) throw new Error('no session');
          await this.admins.authenticateSession(session.sessionId);
          session.checkedAt = now;
        } catch {
          socket.emit(ADMIN_LIVE.expired, { message: 'The admin session has ended' });
          socket.disconnect(true);
        }
      }),
    );
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
