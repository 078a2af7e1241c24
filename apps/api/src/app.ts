import 'reflect-metadata';
import { type INestApplication, Logger } from '@nestjs/common';
import { DiscoveryService, NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { AppModule } from './app.module.js';
import type { ApiConfig } from './config/api-config.js';
import { declaredRoutes } from './openapi/routes.js';

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
  return declaredRoutes(app.get(DiscoveryService)).map((r) => ({
    route: `${r.method} ${r.path}`,
    handler: r.handler,
    policy: r.policy,
  }));
}
