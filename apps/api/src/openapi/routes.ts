// The HTTP routes the controllers declare, read from Nest's own metadata through its
// DiscoveryService: the start-up auth check and the OpenAPI document both walk this list.
import { RequestMethod } from '@nestjs/common';
import {
  HTTP_CODE_METADATA,
  METHOD_METADATA,
  PATH_METADATA,
  ROUTE_ARGS_METADATA,
} from '@nestjs/common/constants.js';
import { RouteParamtypes } from '@nestjs/common/enums/route-paramtypes.enum.js';
import type { DiscoveryService } from '@nestjs/core';
import { AUTH_POLICY, type AuthPolicy } from '../auth/auth-policy.js';
import { type RouteInput, routeInputs } from '../common/route-inputs.js';
import { ROUTE_DOC, type RouteDoc } from './route-doc.js';

export interface DeclaredRoute {
  /** "GET" */
  method: string;
  /** Express's form: "/v1/jobs/:id" */
  path: string;
  /** "JobsController.status" */
  handler: string;
  policy: AuthPolicy | undefined;
  /** @HttpCode, else Nest's default (201 for POST, 200 otherwise). */
  status: number;
  inputs: RouteInput[];
  doc: RouteDoc | undefined;
  /** Path parameters read through a pipe class or instance, by name (ParseUUIDPipe, ...). */
  paramPipes: Record<string, string[]>;
}

interface RouteArg {
  index: number;
  data?: unknown;
  pipes?: unknown[];
}

export function declaredRoutes(discovery: DiscoveryService): DeclaredRoute[] {
  const out: DeclaredRoute[] = [];
  for (const wrapper of discovery.getControllers()) {
    const cls = wrapper.metatype as (new (...args: never[]) => unknown) | undefined;
    if (!cls?.prototype) continue;
    const base = String(Reflect.getMetadata(PATH_METADATA, cls) ?? '');
    const proto = cls.prototype as Record<string, unknown>;
    for (const name of Object.getOwnPropertyNames(proto)) {
      const handler = proto[name];
      if (name === 'constructor' || typeof handler !== 'function') continue;
      const sub = Reflect.getMetadata(PATH_METADATA, handler) as string | undefined;
      if (sub === undefined) continue;
      const verb = Reflect.getMetadata(METHOD_METADATA, handler) as RequestMethod;
      const path = ['', base, sub]
        .join('/')
        .replace(/\/+/g, '/')
        .replace(/(.)\/$/, '$1');
      const args = (Reflect.getMetadata(ROUTE_ARGS_METADATA, cls, name) ?? {}) as Record<
        string,
        RouteArg
      >;
      const paramPipes: Record<string, string[]> = {};
      for (const [key, arg] of Object.entries(args)) {
        if (Number(key.split(':')[0]) !== Number(RouteParamtypes.PARAM)) continue;
        if (typeof arg.data !== 'string') continue;
        paramPipes[arg.data] = (arg.pipes ?? []).map((p) =>
          typeof p === 'function' ? p.name : ((p as object).constructor?.name ?? ''),
        );
      }
      out.push({
        method: RequestMethod[verb],
        path,
        handler: `${cls.name}.${name}`,
        policy: (Reflect.getMetadata(AUTH_POLICY, handler) ??
          Reflect.getMetadata(AUTH_POLICY, cls)) as AuthPolicy | undefined,
        status:
          (Reflect.getMetadata(HTTP_CODE_METADATA, handler) as number | undefined) ??
          (verb === RequestMethod.POST ? 201 : 200),
        inputs: routeInputs(proto, name),
        doc: Reflect.getMetadata(ROUTE_DOC, handler) as RouteDoc | undefined,
        paramPipes,
      });
    }
  }
  return out;
}
