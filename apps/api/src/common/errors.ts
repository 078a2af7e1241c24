// Typed errors of the API. Services throw these; the global filter turns them into OpenAI's
// error shape once. Messages never contain secrets.

export type ApiErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'permission_error'
  | 'not_found_error'
  | 'rate_limit_error'
  | 'conflict_error'
  | 'server_error'
  | 'service_unavailable';

const statusOf: Record<ApiErrorType, number> = {
  invalid_request_error: 400,
  authentication_error: 401,
  permission_error: 403,
  not_found_error: 404,
  conflict_error: 409,
  rate_limit_error: 429,
  server_error: 500,
  service_unavailable: 503,
};

export class ApiError extends Error {
  readonly status: number;
  constructor(
    readonly type: ApiErrorType,
    readonly code: string,
    message: string,
    readonly param: string | null = null,
    /** Extra response headers (Retry-After, x-ratelimit-*). */
    readonly headers: Record<string, string> = {},
    status?: number,
  ) {
    super(message);
    this.name = 'ApiError';
    this.status = status ?? statusOf[type];
  }
}

export const Errors = {
  invalid: (code: string, message: string, param: string | null = null) =>
    new ApiError('invalid_request_error', code, message, param),
  unauthenticated: (message = 'Missing or invalid credentials') =>
    new ApiError('authentication_error', 'invalid_api_key', message),
  forbidden: (code: string, message: string) => new ApiError('permission_error', code, message),
  notFound: (what: string, id: string) =>
    new ApiError('not_found_error', 'not_found', `${what} ${id} not found`),
  conflict: (code: string, message: string) => new ApiError('conflict_error', code, message),
  unavailable: (code: string, message: string) =>
    new ApiError('service_unavailable', code, message),
};
