// What a route says about itself in the OpenAPI document beyond what Nest and the other
// decorators already declare (method, path, status code, @Auth, validated inputs): a summary,
// the contract schema of its answer, and the errors its service throws. Declared on the
// handler, beside @Auth, so a route and its documentation are written in one place.
import { SetMetadata } from '@nestjs/common';
import type { z } from 'zod';

export interface RouteDoc {
  /** One line: what the route does. */
  summary: string;
  /** Longer prose shown under the summary. */
  description?: string;
  /** The success body's contract schema (@pipedec/contracts), when it has one. */
  response?: z.ZodType;
  /** Media types of the success body; JSON unless given (SSE routes add text/event-stream). */
  produces?: string[];
  /**
   * Error statuses the route's service answers with. 400 (validated input), 401 and 403
   * (auth) are derived from the route's other decorators.
   */
  errors?: number[];
}

export const ROUTE_DOC = 'pipedec:route-doc';

export const ApiDoc = (doc: RouteDoc) => SetMetadata(ROUTE_DOC, doc);
