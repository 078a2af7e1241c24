// The global guard, in its own folder because it composes the credential stores (api-keys,
// admin-auth) that themselves use auth/'s vocabulary (policies, principals): auth/ imports
// neither, so the module folders form no circle.
import { type CanActivate, type ExecutionContext, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { AdminAuthService, SESSION_PREFIX } from '../admin-auth/admin-auth.service.js';
import { ApiKeysService } from '../api-keys/api-keys.service.js';
import { Errors } from '../common/errors.js';
import { AUTH_POLICY, type AuthPolicy } from '../auth/auth-policy.js';
import { ADMIN_COOKIE, bearerToken, type AuthedRequest } from '../auth/principal.js';

/**
 * The global guard. A route passes only by what its `Auth.*` declaration allows; a route
 * without one is refused (fail closed).
 */
@Injectable()
export class AuthGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    private readonly apiKeys: ApiKeysService,
    private readonly admins: AdminAuthService,
  ) {}

  async canActivate(ctx: ExecutionContext): Promise<boolean> {
    if (ctx.getType() !== 'http') return true; // socket.io authenticates in its gateway
    const policy = this.reflector.getAllAndOverride<AuthPolicy | undefined>(AUTH_POLICY, [
      ctx.getHandler(),
      ctx.getClass(),
    ]);
    if (!policy)
      throw Errors.forbidden('route_not_declared', 'This route declares no authentication');
    const req = ctx.switchToHttp().getRequest<AuthedRequest>();
    switch (policy.kind) {
      case 'public':
        return true;
      case 'apiKey': {
        const token = bearerToken(req);
        if (!token || token.startsWith(SESSION_PREFIX)) {
          throw Errors.unauthenticated('Missing API key: send Authorization: Bearer <key>');
        }
        const principal = await this.apiKeys.authenticate(token);
        const missing = policy.scopes.filter((s) => !principal.scopes.includes(s));
        if (missing.length > 0) {
          throw Errors.forbidden(
            'missing_scope',
            `This API key lacks the scope(s): ${missing.join(', ')}`,
          );
        }
        req.principal = principal;
        return true;
      }
      case 'admin': {
        const token = bearerToken(req) ?? cookie(req, ADMIN_COOKIE);
        if (!token?.startsWith(SESSION_PREFIX))
          throw Errors.unauthenticated('Admin session required');
        const principal = await this.admins.authenticate(token);
        if (policy.role === 'admin' && principal.role !== 'admin') {
          throw Errors.forbidden('admin_role_required', 'This action needs the admin role');
        }
        req.principal = principal;
        return true;
      }
    }
  }
}

function cookie(req: AuthedRequest, name: string): string | undefined {
  const header = req.headers.cookie;
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) return decodeURIComponent(v.join('='));
  }
  return undefined;
}
