import {
  type ArgumentsHost,
  Catch,
  type ExceptionFilter,
  HttpException,
  Logger,
} from '@nestjs/common';
import type { ErrorBody } from '@pipedec/contracts';
import type { Response } from 'express';
import { ApiError, type ApiErrorType } from './errors.js';

/**
 * The one place errors become HTTP responses, in OpenAI's shape. Unknown errors become a
 * generic 500 whose body reveals nothing; the log keeps the detail.
 */
@Catch()
export class ErrorFilter implements ExceptionFilter {
  private readonly logger = new Logger('ErrorFilter');

  catch(exception: unknown, host: ArgumentsHost): void {
    if (host.getType() !== 'http') return;
    const res = host.switchToHttp().getResponse<Response>();
    const { status, body, headers } = toResponse(exception);
    if (exception instanceof ApiError && exception.type === 'service_unavailable') {
      // An expected refusal (no pipeline whole, a dependency down): one line, no stack, so an
      // outage under load does not bury the log.
      this.logger.warn(`${exception.code}: ${exception.message}`);
    } else if (status >= 500) {
      this.logger.error(
        exception instanceof Error ? (exception.stack ?? exception.message) : exception,
      );
    }
    if (res.headersSent) {
      res.end();
      return;
    }
    for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
    res.status(status).json(body);
  }
}

export function toResponse(exception: unknown): {
  status: number;
  body: ErrorBody;
  headers: Record<string, string>;
} {
  if (exception instanceof ApiError) {
    return {
      status: exception.status,
      headers: exception.headers,
      body: {
        error: {
          type: exception.type,
          code: exception.code,
          message: exception.message,
          param: exception.param,
        },
      },
    };
  }
  // Nest wraps body-parser's errors (invalid JSON, too large) in HttpExceptions.
  const parserError = bodyParserError(
    exception instanceof HttpException ? exception.cause : exception,
  );
  if (parserError) {
    return {
      status: parserError.status,
      headers: {},
      body: {
        error: {
          type: 'invalid_request_error',
          code: parserError.code,
          message: parserError.message,
          param: null,
        },
      },
    };
  }
  if (exception instanceof HttpException) {
    // Framework errors: unknown route (404), body too large (413), malformed JSON (400).
    const status = exception.getStatus();
    const type: ApiErrorType =
      status === 404 ? 'not_found_error' : status < 500 ? 'invalid_request_error' : 'server_error';
    const message = status < 500 ? exception.message : 'Internal server error';
    return {
      status,
      headers: {},
      body: { error: { type, code: httpCode(status), message, param: null } },
    };
  }
  return {
    status: 500,
    headers: {},
    body: {
      error: {
        type: 'server_error',
        code: 'internal_error',
        message: 'Internal server error',
        param: null,
      },
    },
  };
}

function httpCode(status: number): string {
  switch (status) {
    case 404:
      return 'not_found';
    case 413:
      return 'body_too_large';
    case 400:
      return 'bad_request';
    default:
      return `http_${status}`;
  }
}

/** body-parser's errors carry `type` and `status` (entity.too.large, entity.parse.failed). */
function bodyParserError(
  e: unknown,
): { status: number; code: string; message: string } | undefined {
  if (typeof e !== 'object' || e === null) return undefined;
  const { type, status } = e as { type?: unknown; status?: unknown };
  if (type === 'entity.too.large') {
    return { status: 413, code: 'body_too_large', message: 'Request body is too large' };
  }
  if (type === 'entity.parse.failed') {
    return { status: 400, code: 'invalid_json', message: 'Request body is not valid JSON' };
  }
  if (typeof status === 'number' && status >= 400 && status < 500 && typeof type === 'string') {
    return { status, code: type.replaceAll('.', '_'), message: 'Malformed request body' };
  }
  return undefined;
}
