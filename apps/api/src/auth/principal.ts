import { createParamDecorator, type ExecutionContext } from '@nestjs/common';
import type { ApiKeyScope } from '@pipedec/contracts';
import type { Request } from 'express';

export interface TenantPrincipal {
  kind: 'tenant';
  tenantId: string;
  apiKeyId: string;
  scopes: ApiKeyScope[];
}

export interface AdminPrincipal {
  kind: 'admin';
  adminUserId: string;
  email: string;
  role: 'admin' | 'viewer';
  sessionId: string;
}

export type Principal = TenantPrincipal | AdminPrincipal;

export type AuthedRequest = Request & { principal?: Principal };

/** The authenticated tenant of an `Auth.apiKey` route. */
export const CurrentTenant = createParamDecorator((_: unknown, ctx: ExecutionContext) => {
  const p = ctx.switchToHttp().getRequest<AuthedRequest>().principal;
  if (p?.kind !== 'tenant') throw new Error('CurrentTenant used on a route without Auth.apiKey');
  return p;
});

/** The signed-in admin of an `Auth.admin` route. */
export const CurrentAdmin = createParamDecorator((_: unknown, ctx: ExecutionContext) => {
  const p = ctx.switchToHttp().getRequest<AuthedRequest>().principal;
  if (p?.kind !== 'admin') throw new Error('CurrentAdmin used on a route without Auth.admin');
  return p;
});

/** The audit actor string of an admin. */
export function actorOf(admin: AdminPrincipal): string {
  return `admin:${admin.adminUserId}`;
}

/** The cookie that carries an admin session token. */
export const ADMIN_COOKIE = 'pd_admin_session';

/** Credentials from `Authorization: Bearer <token>` (API keys `pd_`, sessions `pds_`). */
export function bearerToken(req: Request): string | undefined {
  return bearerOf(req.headers.authorization);
}

/**
 * The token of an Authorization header value, or undefined. One rule for HTTP and socket.io:
 * whitespace around the header (and so around the key) is ignored, whitespace inside is not.
 */
export function bearerOf(header: unknown): string | undefined {
  if (typeof header === 'string') {
    const m = /^Bearer\s+(\S+)$/i.exec(header.trim());
    if (m) return m[1];
  }
  return undefined;
}
