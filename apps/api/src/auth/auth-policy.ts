import { SetMetadata } from '@nestjs/common';
import type { ApiKeyScope } from '@pipedec/contracts';

/**
 * The authentication decision every route must declare. The global guard refuses any route
 * without one (fail closed), and start-up fails if a route lacks it.
 */
export type AuthPolicy =
  | { kind: 'public' }
  | { kind: 'apiKey'; scopes: ApiKeyScope[] }
  | { kind: 'admin'; role: 'admin' | 'viewer' };

export const AUTH_POLICY = 'pipedec:auth-policy';

export const Auth = {
  /** No credentials (health, metrics, login, OpenAPI). */
  public: () => SetMetadata(AUTH_POLICY, { kind: 'public' } satisfies AuthPolicy),
  /** A tenant API key holding every listed scope. */
  apiKey: (...scopes: ApiKeyScope[]) =>
    SetMetadata(AUTH_POLICY, { kind: 'apiKey', scopes } satisfies AuthPolicy),
  /** An admin session; "viewer" routes also admit admins. */
  admin: (role: 'admin' | 'viewer') =>
    SetMetadata(AUTH_POLICY, { kind: 'admin', role } satisfies AuthPolicy),
};
