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
  app.set('trust proxy', 'loopback');
  app.enableShutdownHooks();
  await app.init();
  assertEveryRouteDeclaresAuth(app);
  return app;
}

/** Start-up fails when a route has no `Auth.*` decision (the guard would refuse it anyway). */
function assertEveryRouteDeclaresAuth(app: INestApplication): void {
  const missing: string[] = [];
  for (const wrapper of app.get(DiscoveryService).getControllers()) {
    const cls = wrapper.metatype as (new (...args: never[]) => unknown) | undefined;
    if (!cls?.prototype) continue;
    const proto = cls.prototype as Record<string, unknown>;
    for (const name of Object.getOwnPropertyNames(proto)) {
      const handler = proto[name];
      if (name === 'constructor' || typeof handler !== 'function') continue;
      if (Reflect.getMetadata(PATH_METADATA, handler) === undefined) continue;
      const policy: unknown =
        Reflect.getMetadata(AUTH_POLICY, handler) ?? Reflect.getMetadata(AUTH_POLICY, cls);
      if (!policy) {
        const method = RequestMethod[Reflect.getMetadata(METHOD_METADATA, handler) as number];
        missing.push(`${cls.name}.${name} (${method})`);
      }
    }
  }
  if (missing.length > 0) {
    throw new Error(`routes without an Auth.* declaration: ${missing.join(', ')}`);
  }
  new Logger('Auth').log('every route declares its authentication');
}
