import 'reflect-metadata';
import { type INestApplication, Logger, RequestMethod } from '@nestjs/common';
import { METHOD_METADATA, PATH_METADATA } from '@nestjs/common/constants.js';
import { DiscoveryService, NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { AppModule } from './app.module.js';
import { AUTH_POLICY } from './auth/auth-policy.js';
import type { ApiConfig } from './config/api-config.js';

/** Builds the API (not listening yet); main.ts and the tests share it. */
export async function createApp(config: ApiConfig): Promise<INestApplication> {
  const app = await NestFactory.create<NestExpressApplication>(AppModule.forRoot(config), {
    bodyParser: false,
    logger: config.NODE_ENV === 'test' ? ['error', 'warn'] : ['log', 'error', 'warn'],
  });
  app.useBodyParser('json', { limit: config.BODY_LIMIT_BYTES });
  app.set('trust proxy', trustProxySetting(config.TRUST_PROXY));
  // Nothing gains from naming the framework to every caller.
  app.getHttpAdapter().getInstance().disable('x-powered-by');
  app.enableShutdownHooks();
  await app.init();
  assertEveryRouteDeclaresAuth(app);
  return app;
}

/** TRUST_PROXY as Express reads it: a boolean, a hop count or a list of addresses. */
export function trustProxySetting(value: string): boolean | number | string {
  if (value === 'true' || value === 'false') return value === 'true';
  if (/^\d+$/.test(value)) return Number(value);
  return value;
}

/** Start-up fails when a route has no `Auth.*` decision (the guard would refuse it anyway). */
function assertEveryRouteDeclaresAuth(app: INestApplication): void {
  const missing = listRoutes(app).filter((r) => !r.policy);
  if (missing.length > 0) {
    throw new Error(
      `routes without an Auth.* declaration: ${missing.map((r) => `${r.handler} (${r.route})`).join(', ')}`,
    );
  }
  new Logger('Auth').log('every route declares its authentication');
}

export interface RouteInfo {
  /** "GET /v1/jobs/:id" */
  route: string;
  handler: string;
  policy: unknown;
}

/** Every HTTP route the controllers declare, with its auth policy. */
export function listRoutes(app: INestApplication): RouteInfo[] {
  const out: RouteInfo[] = [];
  for (const wrapper of app.get(DiscoveryService).getControllers()) {
    const cls = wrapper.metatype as (new (...args: never[]) => unknown) | undefined;
    if (!cls?.prototype) continue;
    const base = String(Reflect.getMetadata(PATH_METADATA, cls) ?? '');
    const proto = cls.prototype as Record<string, unknown>;
    for (const name of Object.getOwnPropertyNames(proto)) {
      const handler = proto[name];
      if (name === 'constructor' || typeof handler !== 'function') continue;
      const sub = Reflect.getMetadata(PATH_METADATA, handler) as string | undefined;
      if (sub === undefined) continue;
      const method = RequestMethod[Reflect.getMetadata(METHOD_METADATA, handler) as number];
      const path = ['', base, sub]
        .join('/')
        .replace(/\/+/g, '/')
        .replace(/(.)\/$/, '$1');
      out.push({
        route: `${method} ${path}`,
        handler: `${cls.name}.${name}`,
        policy: Reflect.getMetadata(AUTH_POLICY, handler) ?? Reflect.getMetadata(AUTH_POLICY, cls),
      });
    }
  }
  return out;
}
