import { createHash, randomBytes } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { verifyPassword } from '@pipedec/db';
import { AuditService } from '../audit/audit.service.js';
import type { AdminPrincipal } from '../auth/principal.js';
import { Errors } from '../common/errors.js';
import { API_CONFIG, type ApiConfig } from '../config/api-config.js';
import { Clock } from '../infra/clock.js';
import { Database } from '../infra/prisma.provider.js';
import { LoginLimiter } from './login-limiter.js';

export const SESSION_PREFIX = 'pds_';

function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

@Injectable()
export class AdminAuthService {
  constructor(
    private readonly db: Database,
    private readonly limiter: LoginLimiter,
    private readonly audit: AuditService,
    private readonly clock: Clock,
    @Inject(API_CONFIG) private readonly config: ApiConfig,
  ) {}

  /**
   * Checks the password and opens a session; the token is returned once. Every failed attempt
   * and every lockout is written to the audit log (email and address, never the password).
   */
  async login(email: string, password: string, address: string) {
    const attempt = await this.limiter.begin(email, address);
    for (const counter of attempt.lockedNow) {
      await this.auditFailure('admin.login_lockout', email, address, counter);
    }
    if (attempt.refused) {
      await this.auditFailure('admin.login_failed', email, address, `locked:${attempt.refused}`);
      throw LoginLimiter.refusalError(attempt);
    }
    const user = await this.db.client.adminUser.findUnique({ where: { email } });
    // Verify against a dummy hash when the user is unknown, so timing does not reveal it.
    const ok = user
      ? await verifyPassword(password, user.passwordHash)
      : await verifyPassword(password, DUMMY_HASH).then(() => false);
    if (!user || !ok || user.disabled) {
      const reason = !user ? 'unknown_email' : !ok ? 'wrong_password' : 'disabled';
      await this.auditFailure('admin.login_failed', email, address, reason, user?.id);
      throw Errors.unauthenticated('Invalid email or password');
    }
    await this.limiter.succeeded(email, address);
    const token = SESSION_PREFIX + randomBytes(32).toString('base64url');
    const expiresAt = new Date(this.clock.nowMs() + this.config.ADMIN_SESSION_TTL_S * 1000);
    const session = await this.db.client.adminSession.create({
      data: { adminUserId: user.id, tokenHash: hashToken(token), expiresAt },
    });
    await this.audit.record({
      actor: `admin:${user.id}`,
      action: 'admin.login',
      targetType: 'admin_session',
      targetId: session.id,
      details: { address },
    });
    return { token, expiresAt, role: user.role, email: user.email };
  }

  private async auditFailure(
    action: 'admin.login_failed' | 'admin.login_lockout',
    email: string,
    address: string,
    reason: string,
    adminUserId?: string,
  ): Promise<void> {
    await this.audit.record({
      actor: `anonymous:${address}`,
      action,
      targetType: 'admin_user',
      targetId: adminUserId,
      details: { email: email.slice(0, 320), address, reason },
    });
  }

  async authenticate(token: string): Promise<AdminPrincipal> {
    return this.principalOf(
      await this.db.client.adminSession.findUnique({
        where: { tokenHash: hashToken(token) },
        include: { adminUser: true },
      }),
    );
  }

  /** The session's admin while it is valid (a live connection re-checks its session). */
  async authenticateSession(sessionId: string): Promise<AdminPrincipal> {
    return this.principalOf(
      await this.db.client.adminSession.findUnique({
        where: { id: sessionId },
        include: { adminUser: true },
      }),
    );
  }

  private principalOf(
    session: {
      id: string;
      adminUserId: string;
      revokedAt: Date | null;
      expiresAt: Date;
      adminUser: { email: string; role: AdminPrincipal['role']; disabled: boolean };
    } | null,
  ): AdminPrincipal {
    if (
      !session ||
      session.revokedAt !== null ||
      session.expiresAt <= this.clock.now() ||
      session.adminUser.disabled
    ) {
      throw Errors.unauthenticated('Invalid or expired session');
    }
    return {
      kind: 'admin',
      adminUserId: session.adminUserId,
      email: session.adminUser.email,
      role: session.adminUser.role,
      sessionId: session.id,
    };
  }

  async logout(admin: AdminPrincipal): Promise<void> {
    await this.db.client.adminSession.update({
      where: { id: admin.sessionId },
      data: { revokedAt: this.clock.now() },
    });
    await this.audit.record({
      actor: `admin:${admin.adminUserId}`,
      action: 'admin.logout',
      targetType: 'admin_session',
      targetId: admin.sessionId,
    });
  }
}

// scrypt hash of a random password nobody knows; only its cost matters.
const DUMMY_HASH =
  'scrypt$16384$8$1$c2FsdHNhbHRzYWx0c2FsdA==$3q2+7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';
