// Idempotency-Key on request creation (#18): a client whose connection dropped before it
// learnt its request's id sends the same POST again with the same key, and gets the same
// request (its stream or result, or for /v1/jobs its id) instead of a second request billed
// again, as payment and LLM APIs do. A key is remembered per tenant for REQUEST_KEYS_TTL_S (1
// hour, as long as the request's events stay readable for a replay), with a digest of the
// endpoint and the validated body: the same key with another body or endpoint is a 409. The
// first request claims the key atomically (SET NX) before it reserves anything, so concurrent
// retries also get one request; when its admission fails, the key is released again.
import { createHash } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import { REQUEST_KEYS_TTL_S } from '@pipedec/contracts';
import { z } from 'zod';
import { ApiError, Errors } from '../common/errors.js';
import { ValidHeader } from '../common/route-inputs.js';
import { RedisConnections } from '../infra/redis.provider.js';

/** What a POST carried: its Idempotency-Key and which endpoint it was. */
export interface IdempotencyRequest {
  key: string;
  route: 'completions' | 'chat.completions' | 'jobs';
}

/** What the key stands for, once claimed. */
export interface IdempotencyRecord {
  requestId: string;
  /** sha256 of the endpoint and the validated request. */
  digest: string;
  promptTokens: number;
  maxTokens: number;
  createdAt: number; // epoch seconds
}

/** The Idempotency-Key header: 1-255 visible ASCII characters (surrounding spaces trimmed). */
export const idempotencyKeySchema = z
  .string()
  .regex(/^[\x21-\x7e]{1,255}$/)
  .describe(
    'A retry with the same key and body within an hour gets the same request (its result or stream, Idempotent-Replayed: true), never a second charge; the same key with another body is a 409 idempotency_key_reused. 1-255 visible ASCII characters.',
  );

/** The Idempotency-Key header, validated: 1-255 visible ASCII characters. */
export function idempotencyKeyOf(raw: unknown): string | undefined {
  if (raw === undefined) return undefined;
  const key = typeof raw === 'string' ? raw.trim() : raw;
  const parsed = idempotencyKeySchema.safeParse(key);
  if (!parsed.success) {
    throw Errors.invalid(
      'invalid_idempotency_key',
      'The Idempotency-Key header must be 1 to 255 visible ASCII characters',
      'Idempotency-Key',
    );
  }
  return parsed.data;
}

/** The request's Idempotency-Key (undefined without one), validated and documented. */
export const IdempotencyKey = () =>
  ValidHeader('Idempotency-Key', idempotencyKeySchema, idempotencyKeyOf);

export function requestDigest(route: string, params: unknown): string {
  return createHash('sha256').update(JSON.stringify({ route, params })).digest('hex');
}

const RELEASE = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0`;

@Injectable()
export class IdempotencyStore {
  constructor(private readonly redis: RedisConnections) {}

  private redisKey(tenantId: string, key: string): string {
    const h = createHash('sha256').update(key).digest('hex');
    return `${this.redis.prefix}idem:${tenantId}:${h}`;
  }

  async find(tenantId: string, key: string): Promise<IdempotencyRecord | null> {
    const raw = await this.redis.command.get(this.redisKey(tenantId, key));
    return raw === null ? null : (JSON.parse(raw) as IdempotencyRecord);
  }

  /** Claims the key for `record`: null when this call did, else the record that holds it. */
  async claim(tenantId: string, key: string, record: IdempotencyRecord) {
    const k = this.redisKey(tenantId, key);
    const ok = await this.redis.command.set(
      k,
      JSON.stringify(record),
      'EX',
      REQUEST_KEYS_TTL_S,
      'NX',
    );
    if (ok === 'OK') return null;
    return (await this.find(tenantId, key)) ?? record;
  }

  /** Frees the key after `record`'s admission failed (only if it still holds that record). */
  async release(tenantId: string, key: string, record: IdempotencyRecord): Promise<void> {
    await this.redis.command
      .eval(RELEASE, 1, this.redisKey(tenantId, key), JSON.stringify(record))
      .catch(() => undefined);
  }
}

/** The 409 for a key reused with another body or endpoint. */
export function keyReused(): ApiError {
  return Errors.conflict(
    'idempotency_key_reused',
    'This Idempotency-Key was used in the last hour with a different endpoint or request body',
  );
}
