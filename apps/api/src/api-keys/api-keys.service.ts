import { Injectable, Logger } from '@nestjs/common';
import {
  apiKeyScopeSchema,
  KEY_EXPIRY_MAX_DAYS,
  type ApiKeyScope,
  type CreateApiKey,
} from '@pipedec/contracts';
import { digestsEqual, hashApiKeySecret, newApiKeySecret } from '@pipedec/db';
import { AuditService } from '../audit/audit.service.js';
import type { TenantPrincipal } from '../auth/principal.js';
import { Errors } from '../common/errors.js';
import { CacheInvalidation, ReadThroughCache } from '../infra/cache-invalidation.js';
import { Clock } from '../infra/clock.js';
import { ApiKeysRepository, publicKey, type KeyForAuth } from './api-keys.repository.js';

/** Last-used times are kept to the minute: a key's row is written at most once a minute. */
const TOUCH_EVERY_MS = 60_000;
/**
 * How long a replica trusts a key it read without reading it again. Changes made through the
 * API (revoke, rotate, a tenant's status) apply at once regardless (CacheInvalidation); this
 * bounds only what a change behind the API's back (a manual UPDATE) takes to apply.
 */
const KEY_CACHE_TTL_MS = 10_000;

@Injectable()
export class ApiKeysService {
  private readonly logger = new Logger('ApiKeys');
  /** When this replica last wrote each key's last-used time (saves a write per request). */
  private readonly touched = new Map<string, number>();
  /** Keys by secret hash: authentication reads PostgreSQL once per key and TTL, not per request. */
  private readonly byHash: ReadThroughCache<KeyForAuth>;

  constructor(
    private readonly repo: ApiKeysRepository,
    private readonly audit: AuditService,
    private readonly clock: Clock,
    private readonly invalidation: CacheInvalidation,
  ) {
    this.byHash = new ReadThroughCache(invalidation, KEY_CACHE_TTL_MS);
  }

  /**
   * The tenant a secret belongs to, or an authentication error that says nothing about why
   * (unknown, revoked, expired and suspended look alike to the caller).
   */
  async authenticate(secret: string): Promise<TenantPrincipal> {
    const hash = hashApiKeySecret(secret);
    const key = await this.byHash.get(hash, () => this.repo.findByHash(hash));
    const now = this.clock.now();
    if (!key) throw Errors.unauthenticated('Invalid API key');
    const current = digestsEqual(key.secretHash, hash);
    const previous =
      !current &&
      key.previousSecretHash !== null &&
      digestsEqual(key.previousSecretHash, hash) &&
      key.previousExpiresAt !== null &&
      key.previousExpiresAt > now;
    const usable =
      (current || previous) &&
      key.status === 'active' &&
      (key.expiresAt === null || key.expiresAt > now) &&
      key.tenantStatus === 'active';
    if (!usable) throw Errors.unauthenticated('Invalid API key');
    this.touch(key.tenantId, key.id, now);
    return {
      kind: 'tenant',
      tenantId: key.tenantId,
      apiKeyId: key.id,
      scopes: key.scopes.filter((s): s is ApiKeyScope => apiKeyScopeSchema.safeParse(s).success),
    };
  }

  private touch(tenantId: string, keyId: string, now: Date): void {
    const last = this.touched.get(keyId);
    if (last !== undefined && now.getTime() - last < TOUCH_EVERY_MS) return;
    this.touched.set(keyId, now.getTime());
    if (this.touched.size > 10_000) this.touched.delete(this.touched.keys().next().value!);
    this.repo.touch(tenantId, keyId, now).catch((e: unknown) => {
      this.touched.delete(keyId);
      this.logger.warn(`could not record use of key ${keyId}: ${String(e)}`);
    });
  }

  /**
   * The principal of a tenant's key for an admin acting as it (playground): the key must be
   * usable and hold `scope`, exactly as if its secret had been presented.
   */
  async actAs(tenantId: string, keyId: string, scope: ApiKeyScope): Promise<TenantPrincipal> {
    const key = await this.repo.find(tenantId, keyId);
    if (!key) throw Errors.notFound('API key', keyId);
    const now = this.clock.now();
    if (key.status !== 'active' || (key.expiresAt !== null && key.expiresAt <= now)) {
      throw Errors.conflict('key_not_usable', `API key ${keyId} is revoked or expired`);
    }
    if (!key.scopes.includes(scope)) {
      throw Errors.forbidden('missing_scope', `API key ${keyId} lacks the scope: ${scope}`);
    }
    return {
      kind: 'tenant',
      tenantId,
      apiKeyId: key.id,
      scopes: key.scopes.filter((s): s is ApiKeyScope => apiKeyScopeSchema.safeParse(s).success),
    };
  }

  async list(tenantId: string) {
    return (await this.repo.list(tenantId)).map(publicKey);
  }

  /** Creates a key; the secret is in the result and nowhere else, ever. */
  async create(tenantId: string, input: CreateApiKey, actor: string) {
    const { secret, prefix, hash } = newApiKeySecret();
    const expiresAt = input.expiresAt ? new Date(input.expiresAt) : null;
    const now = this.clock.now().getTime();
    if (
      expiresAt &&
      (expiresAt.getTime() <= now ||
        expiresAt.getTime() > now + (KEY_EXPIRY_MAX_DAYS + 1) * 86_400_000)
    ) {
      throw Errors.invalid(
        'invalid_expiry',
        `expiry must be in the future and at most ${KEY_EXPIRY_MAX_DAYS.toLocaleString('en-US')} days away (or never)`,
        'expiresAt',
      );
    }
    const key = await this.repo.transaction(async (tx) => {
      const created = await this.repo.create(
        tenantId,
        { name: input.name, prefix, secretHash: hash, scopes: input.scopes, expiresAt },
        tx,
      );
      await this.audit.record(
        {
          actor,
          action: 'api_key.create',
          targetType: 'api_key',
          targetId: created.id,
          tenantId,
          details: {
            name: input.name,
            prefix,
            scopes: input.scopes,
            expiresAt: input.expiresAt ?? null,
          },
        },
        tx,
      );
      return created;
    });
    return { ...publicKey(key), secret };
  }

  /** Revokes at once: the next request with this key (or its previous secret) fails, on any replica. */
  async revoke(tenantId: string, keyId: string, actor: string) {
    const revoked = await this.repo.transaction(async (tx) => {
      const [key] = await this.repo.update(
        tenantId,
        keyId,
        { status: 'revoked', revokedAt: this.clock.now(), previousExpiresAt: null },
        tx,
      );
      if (!key) throw Errors.notFound('API key', keyId);
      await this.audit.record(
        {
          actor,
          action: 'api_key.revoke',
          targetType: 'api_key',
          targetId: keyId,
          tenantId,
          details: { prefix: key.prefix },
        },
        tx,
      );
      return publicKey(key);
    });
    await this.invalidation.changed();
    return revoked;
  }

  /**
   * Issues a new secret for the same key id. The old secret keeps working for
   * `gracePeriodSeconds` (0: stops at once), so clients can switch without downtime.
   */
  async rotate(tenantId: string, keyId: string, gracePeriodSeconds: number, actor: string) {
    const { secret, prefix, hash } = newApiKeySecret();
    const rotated = await this.repo.transaction(async (tx) => {
      const old = await this.repo.find(tenantId, keyId, tx);
      if (!old) throw Errors.notFound('API key', keyId);
      if (old.status !== 'active') {
        throw Errors.conflict('key_revoked', `API key ${keyId} is revoked and cannot be rotated`);
      }
      const graceUntil =
        gracePeriodSeconds > 0 ? new Date(this.clock.nowMs() + gracePeriodSeconds * 1000) : null;
      const [key] = await this.repo.update(
        tenantId,
        keyId,
        {
          secretHash: hash,
          prefix,
          previousSecretHash: graceUntil ? old.secretHash : null,
          previousExpiresAt: graceUntil,
        },
        tx,
      );
      await this.audit.record(
        {
          actor,
          action: 'api_key.rotate',
          targetType: 'api_key',
          targetId: keyId,
          tenantId,
          details: { oldPrefix: old.prefix, newPrefix: prefix, gracePeriodSeconds },
        },
        tx,
      );
      return { ...publicKey(key), secret };
    });
    await this.invalidation.changed();
    return rotated;
  }
}
