import { Inject, Injectable, Logger } from '@nestjs/common';
import type { Response } from 'express';
import type { TenantPrincipal } from '../auth/principal.js';
import { ApiError } from '../common/errors.js';
import { toResponse } from '../common/error.filter.js';
import { API_CONFIG, type ApiConfig } from '../config/api-config.js';
import { AccountingService } from './accounting.service.js';
import { EventReader } from './event-reader.js';
import type { Admitted } from './generation.service.js';
import { chunk, finishReason, fullResponse, usageOf, type Kind } from './openai-format.js';
import { relayTokens } from './relay.js';
import { RequestsService } from './requests.service.js';

/** A streaming client hears something (a token or an SSE comment) at least this often. */
const KEEPALIVE_MS = 2000;

export interface RelayOptions {
  kind: Kind;
  model: string;
  includeUsage: boolean;
  /** Keep generating when the client drops the stream. */
  keepRunning: boolean;
}

/** Turns a request's event stream into OpenAI responses: one JSON body, or SSE chunks. */
@Injectable()
export class GenerationRelay {
  private readonly logger = new Logger('Relay');

  constructor(
    private readonly events: EventReader,
    private readonly requests: RequestsService,
    private readonly accounting: AccountingService,
    @Inject(API_CONFIG) private readonly config: ApiConfig,
  ) {}

  models() {
    return {
      object: 'list',
      data: [{ id: this.config.MODEL_NAME, object: 'model', created: 0, owned_by: 'pipedec' }],
    };
  }

  private setHeaders(res: Response, a: Admitted): void {
    for (const [k, v] of Object.entries(a.headers)) res.setHeader(k, v);
    res.setHeader('x-request-id', a.requestId);
  }

  async whole(tenant: TenantPrincipal, a: Admitted, o: RelayOptions, res: Response): Promise<void> {
    const abort = new AbortController();
    const onClose = () => {
      if (!res.writableFinished) {
        abort.abort();
        if (!o.keepRunning) this.cancelQuietly(tenant.tenantId, a.requestId);
      }
    };
    res.on('close', onClose);
    const { terminal, text } = await relayTokens(
      this.events,
      a.requestId,
      abort.signal,
      () => undefined,
    );
    res.off('close', onClose);
    if (!terminal) return; // client gone
    await this.accounting.finalize(tenant.tenantId, a.requestId);
    this.setHeaders(res, a);
    if (terminal.type === 'error') {
      const { status, body } = toResponse(generationFailed(terminal.code, terminal.message));
      res.status(status).json(body);
      return;
    }
    res.status(200).json(fullResponse(o.kind, a.requestId, o.model, a.createdAt, text, terminal));
  }

  async stream(
    tenant: TenantPrincipal,
    a: Admitted,
    o: RelayOptions,
    res: Response,
  ): Promise<void> {
    this.setHeaders(res, a);
    res.status(200);
    res.setHeader('content-type', 'text/event-stream; charset=utf-8');
    res.setHeader('cache-control', 'no-cache');
    res.setHeader('connection', 'keep-alive');
    res.flushHeaders();
    const send = (data: unknown) => res.write(`data: ${JSON.stringify(data)}\n\n`);
    // As OpenAI streams: with stream_options.include_usage every choice chunk says usage: null
    // and one more chunk with no choices carries the usage; without it no chunk has usage.
    const sendChunk = (c: ReturnType<typeof chunk>) =>
      send(o.includeUsage ? { ...c, usage: null } : c);
    const abort = new AbortController();
    let ended = false;
    res.on('close', () => {
      if (ended) return;
      abort.abort();
      if (!o.keepRunning) this.cancelQuietly(tenant.tenantId, a.requestId);
    });
    let first = true;
    // While nothing arrives (a pipeline broke and the job waits for its retry, or a long
    // queue), an SSE comment tells the client and any proxy that the request is alive; OpenAI's
    // clients skip comments.
    let wroteAt = Date.now();
    const keepAlive = setInterval(() => {
      if (Date.now() - wroteAt < KEEPALIVE_MS) return;
      res.write(': keep-alive\n\n');
      wroteAt = Date.now();
    }, KEEPALIVE_MS / 2);
    try {
      const { terminal } = await relayTokens(
        this.events,
        a.requestId,
        abort.signal,
        (text) => {
          sendChunk(chunk(o.kind, a.requestId, o.model, a.createdAt, text, null, first));
          first = false;
          wroteAt = Date.now();
        },
        (e) => {
          res.write(`: ${e.code}: retrying on the next whole pipeline\n\n`);
          wroteAt = Date.now();
        },
      );
      if (!terminal) return;
      await this.accounting.finalize(tenant.tenantId, a.requestId);
      if (terminal.type === 'error') {
        send(toResponse(generationFailed(terminal.code, terminal.message)).body);
      } else {
        sendChunk(
          chunk(
            o.kind,
            a.requestId,
            o.model,
            a.createdAt,
            '',
            finishReason(terminal.finishReason),
            first,
          ),
        );
        if (o.includeUsage) {
          const { choices: _c, ...rest } = chunk(
            o.kind,
            a.requestId,
            o.model,
            a.createdAt,
            '',
            null,
          );
          send({ ...rest, choices: [], usage: usageOf(terminal) });
        }
      }
      res.write('data: [DONE]\n\n');
    } catch (e) {
      this.logger.error(`stream ${a.requestId}: ${String(e)}`);
      send(toResponse(e).body);
    } finally {
      clearInterval(keepAlive);
      ended = true;
      res.end();
    }
  }

  private cancelQuietly(tenantId: string, requestId: string): void {
    this.requests.cancel(tenantId, requestId).catch((e: unknown) => {
      this.logger.warn(`cancel ${requestId} after disconnect: ${String(e)}`);
    });
  }
}

function generationFailed(code: string, message: string): ApiError {
  return new ApiError('server_error', code, `Generation failed: ${message}`, null, {}, 502);
}
