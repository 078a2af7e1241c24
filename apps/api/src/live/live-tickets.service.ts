import { createHash, randomBytes } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import type { LiveTicket } from '@pipedec/contracts';
import type { AdminPrincipal } from '../auth/principal.js';
import { Clock } from '../infra/clock.js';
import { RedisConnections } from '../infra/redis.provider.js';

/** How long a ticket may wait before its connection: enough for one handshake, no more. */
export const LIVE_TICKET_TTL_MS = 30_000;

/**
 * Single-use tickets for the admins' socket.io namespace. The dashboard keeps the admin
 * session token in an httpOnly cookie; its server trades the session for a ticket that the
 * page presents once, so the session secret never reaches the browser's scripts. A ticket
 * names the session it came from and lasts LIVE_TICKET_TTL_MS; only its hash is stored.
 */
@Injectable()
export class LiveTickets {
  constructor(
    private readonly redis: RedisConnections,
    private readonly clock: Clock,
  ) {}

  private key(ticket: string): string {
    return `${this.redis.prefix}live-ticket:${createHash('sha256').update(ticket).digest('hex')}`;
  }

  async issue(admin: AdminPrincipal): Promise<LiveTicket> {
    const ticket = 'pdl_' + randomBytes(24).toString('base64url');
    await this.redis.command.set(this.key(ticket), admin.sessionId, 'PX', LIVE_TICKET_TTL_MS);
    return { ticket, expiresAt: this.clock.nowMs() + LIVE_TICKET_TTL_MS };
  }

  /** The session the ticket was issued for, consuming the ticket; undefined if unknown or used. */
  async redeem(ticket: string): Promise<string | undefined> {
    return (await this.redis.command.getdel(this.key(ticket))) ?? undefined;
  }
}
