import { Logger } from '@nestjs/common';
import {
  ConnectedSocket,
  MessageBody,
  type OnGatewayConnection,
  type OnGatewayDisconnect,
  SubscribeMessage,
  WebSocketGateway,
} from '@nestjs/websockets';
import type { Socket } from 'socket.io';
import { z } from 'zod';
import { ApiKeysService } from '../api-keys/api-keys.service.js';
import { bearerOf, type TenantPrincipal } from '../auth/principal.js';
import { ApiError } from '../common/errors.js';
import { CacheInvalidation } from '../infra/cache-invalidation.js';
import { EventReader } from './event-reader.js';
import { RequestsService } from './requests.service.js';
import { issuesMessage } from '../common/parse-body.js';

const MAX_ID_PART = 2n ** 64n - 1n;

const subscribeSchema = z
  .object({
    requestId: z.uuid(),
    /** Resume after this stream id (the `id` of the last event received); absent: from the start. */
    lastEventId: z
      .string()
      .regex(/^\d+-\d+$/)
      // Redis refuses a part above 2^64 - 1, and one refused id would fail the XREAD that
      // this replica shares between every stream it follows.
      .refine(
        (id) => id.split('-').every((part) => /^\d+$/.test(part) && BigInt(part) <= MAX_ID_PART),
        {
          message: 'each part of a stream id is at most 18446744073709551615',
        },
      )
      .optional(),
  })
  .strict();

interface ClientState {
  tenant?: TenantPrincipal;
  /** The key it connected with, checked again on every subscribe and every admin change. */
  key?: string;
  follows: Map<string, AbortController>;
}

/**
 * socket.io streaming on namespace /v1/stream. Connect with `auth: { apiKey }`; emit
 * `subscribe` {requestId, lastEventId?}; receive `event` {requestId, id, event} for every
 * record of the request's stream after lastEventId, then `end` {requestId}. Resuming with the
 * last id received loses and repeats nothing, because ids are the stream's own.
 *
 * A key revoked or expired, or its tenant suspended, stops working on open sockets too (#18:
 * it kept streaming): every subscribe authenticates the key again, and every admin change to
 * keys or tenants (CacheInvalidation, heard by every replica) re-checks each open socket here,
 * which gets `error` {code} and is disconnected if its key no longer passes.
 */
@WebSocketGateway({ namespace: '/v1/stream' })
export class StreamGateway implements OnGatewayConnection, OnGatewayDisconnect {
  private readonly logger = new Logger('StreamGateway');
  private readonly clients = new Map<Socket, ClientState>();

  constructor(
    private readonly apiKeys: ApiKeysService,
    private readonly requests: RequestsService,
    private readonly events: EventReader,
    invalidation: CacheInvalidation,
  ) {
    invalidation.onChange(() => void this.recheckAll());
  }

  /** Authenticates `key` for streaming: a valid key with the generate scope. */
  private async principal(key: string | undefined): Promise<TenantPrincipal> {
    if (!key) throw new ApiError('authentication_error', 'invalid_api_key', 'Missing API key');
    const tenant = await this.apiKeys.authenticate(key);
    if (!tenant.scopes.includes('generate')) {
      throw new ApiError(
        'permission_error',
        'missing_scope',
        'This API key lacks the scope: generate',
      );
    }
    return tenant;
  }

  /** Tells the client why and disconnects it. */
  private refuse(client: Socket, e: unknown): void {
    const err =
      e instanceof ApiError
        ? e
        : new ApiError('authentication_error', 'invalid_api_key', 'Invalid API key');
    client.emit('error', { type: err.type, code: err.code, message: err.message });
    client.disconnect(true);
  }

  /** After an admin change: every open socket whose key no longer passes is disconnected. */
  private async recheckAll(): Promise<void> {
    for (const [client, state] of [...this.clients]) {
      if (!state.key || !client.connected) continue;
      try {
        state.tenant = await this.principal(state.key);
      } catch (e) {
        if (!(e instanceof ApiError)) {
          this.logger.warn(`cannot re-check a socket's key: ${String(e)}`);
          continue; // Redis or the database hiccuped: the next change or subscribe checks again
        }
        state.tenant = undefined;
        this.refuse(client, e);
      }
    }
  }

  async handleConnection(client: Socket): Promise<void> {
    const state: ClientState = { follows: new Map() };
    this.clients.set(client, state);
    const auth = client.handshake.auth as { apiKey?: unknown };
    // The same rule as HTTP's Authorization header: surrounding whitespace is ignored.
    state.key =
      typeof auth.apiKey === 'string'
        ? auth.apiKey.trim() || undefined
        : bearerOf(client.handshake.headers.authorization);
    try {
      state.tenant = await this.principal(state.key);
      client.emit('ready', { tenantId: state.tenant.tenantId });
    } catch (e) {
      this.refuse(client, e);
    }
  }

  handleDisconnect(client: Socket): void {
    const state = this.clients.get(client);
    this.clients.delete(client);
    for (const abort of state?.follows.values() ?? []) abort.abort();
  }

  @SubscribeMessage('subscribe')
  async subscribe(@ConnectedSocket() client: Socket, @MessageBody() body: unknown) {
    const state = this.clients.get(client);
    if (!state?.tenant)
      return { ok: false, error: { code: 'invalid_api_key', message: 'Not authenticated' } };
    // The key may have been revoked, or its tenant suspended, since the socket connected.
    try {
      state.tenant = await this.principal(state.key);
    } catch (e) {
      state.tenant = undefined;
      const err = e instanceof ApiError ? e : null;
      setImmediate(() => this.refuse(client, e));
      return {
        ok: false,
        error: { code: err?.code ?? 'invalid_api_key', message: err?.message ?? 'Invalid API key' },
      };
    }
    const parsed = subscribeSchema.safeParse(body);
    if (!parsed.success) {
      return {
        ok: false,
        error: {
          code: 'invalid_body',
          message: issuesMessage(parsed.error.issues),
        },
      };
    }
    const { requestId, lastEventId } = parsed.data;
    // Another tenant's request looks exactly like a missing one.
    if (!(await this.requests.owns(state.tenant.tenantId, requestId))) {
      return { ok: false, error: { code: 'not_found', message: `Request ${requestId} not found` } };
    }
    state.follows.get(requestId)?.abort();
    const abort = new AbortController();
    state.follows.set(requestId, abort);
    void this.pump(client, requestId, lastEventId ?? '0', abort);
    return { ok: true };
  }

  private async pump(
    client: Socket,
    requestId: string,
    after: string,
    abort: AbortController,
  ): Promise<void> {
    try {
      for await (const { id, event } of this.events.follow(requestId, after, abort.signal)) {
        client.emit('event', { requestId, id, event });
      }
      if (!abort.signal.aborted) client.emit('end', { requestId });
    } catch (e) {
      if (!abort.signal.aborted) this.logger.warn(`stream ${requestId}: ${String(e)}`);
    }
  }
}
