// The one place a route names the zod schema of its body, query, path parameter or header:
// the decorator both validates the value (through parseBody, so a refusal is the usual 400
// naming the field) and records the schema on the handler, where the OpenAPI document reads
// it (openapi/openapi-document.ts). A route cannot validate with one schema and document
// another, and a new route's inputs appear in /openapi.json without being listed anywhere.
import {
  Body,
  createParamDecorator,
  type ExecutionContext,
  Param,
  type PipeTransform,
  Query,
} from '@nestjs/common';
import type { Request } from 'express';
import { z } from 'zod';
import { parseBody } from './parse-body.js';

/** An input of a route and the schema it is validated with. */
export type RouteInput =
  | { in: 'body'; schema: z.ZodType }
  | { in: 'query'; schema: z.ZodType }
  | { in: 'path' | 'header'; name: string; schema: z.ZodType };

const ROUTE_INPUTS = 'pipedec:route-inputs';

/** The inputs the handler `name` of a controller's prototype validates, in declaration order. */
export function routeInputs(proto: object, name: string): RouteInput[] {
  return (Reflect.getMetadata(ROUTE_INPUTS, proto, name) as RouteInput[] | undefined) ?? [];
}

function recordInput(proto: object, name: string | symbol | undefined, input: RouteInput): void {
  if (name === undefined) throw new Error('route input decorators belong on handler parameters');
  Reflect.defineMetadata(ROUTE_INPUTS, [...routeInputs(proto, String(name)), input], proto, name);
}

class ZodPipe implements PipeTransform {
  constructor(private readonly schema: z.ZodType) {}
  transform(value: unknown): unknown {
    return parseBody(this.schema, value);
  }
}

/** Validates one named value inside an object, so the 400 names it as `param`. */
class NamedZodPipe implements PipeTransform {
  private readonly wrapped: z.ZodType;
  constructor(
    private readonly name: string,
    schema: z.ZodType,
  ) {
    this.wrapped = z.object({ [name]: schema });
  }
  transform(value: unknown): unknown {
    return (parseBody(this.wrapped, { [this.name]: value }) as Record<string, unknown>)[this.name];
  }
}

/** The JSON body, parsed with `schema` (the handler receives its output). */
export function ValidBody(schema: z.ZodType): ParameterDecorator {
  return (proto, name, index) => {
    Body(new ZodPipe(schema))(proto, name, index);
    recordInput(proto, name, { in: 'body', schema });
  };
}

/** The query string as an object, parsed with `schema` (an object schema). */
export function ValidQuery(schema: z.ZodType): ParameterDecorator {
  return (proto, name, index) => {
    Query(new ZodPipe(schema))(proto, name, index);
    recordInput(proto, name, { in: 'query', schema });
  };
}

/** The path parameter `param`, parsed with `schema`. */
export function ValidParam(param: string, schema: z.ZodType): ParameterDecorator {
  return (proto, name, index) => {
    Param(param, new NamedZodPipe(param, schema))(proto, name, index);
    recordInput(proto, name, { in: 'path', name: param, schema });
  };
}

/** The raw value of the request header named by the decorator's data. */
const RawHeader = createParamDecorator(
  (header: string, ctx: ExecutionContext) =>
    ctx.switchToHttp().getRequest<Request>().headers[header],
);

/**
 * The request header `header`, read through `parse` (which validates it with `schema` and may
 * answer with an error of its own, e.g. Idempotency-Key's); documented as an optional header
 * with `schema`.
 */
export function ValidHeader(
  header: string,
  schema: z.ZodType,
  parse: (raw: unknown) => unknown,
): ParameterDecorator {
  return (proto, name, index) => {
    RawHeader(header.toLowerCase(), { transform: parse })(proto, name, index);
    recordInput(proto, name, { in: 'header', name: header, schema });
  };
}
