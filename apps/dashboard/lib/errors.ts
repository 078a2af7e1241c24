// Typed errors of the dashboard's calls to the API, with the context a reader needs
// ("Request failed with status 404: GET /admin/x").

export type DashboardErrorCode =
  | 'unauthenticated' // no session, or it expired: the page sends the admin to the login
  | 'forbidden' // the admin's role does not allow the action
  | 'not_found'
  | 'not_available' // the API does not implement this endpoint yet
  | 'invalid' // the API refused the input
  | 'conflict'
  | 'rate_limited'
  | 'unreachable' // the API did not answer
  | 'bad_response' // the API answered with a body the dashboard cannot read
  | 'api_error';

export class ApiError extends Error {
  constructor(
    readonly code: DashboardErrorCode,
    message: string,
    readonly status: number | null,
    /** The API's own error code (its body's error.code), when it sent one. */
    readonly apiCode: string | null = null,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export function codeForStatus(status: number): DashboardErrorCode {
  if (status === 401) return 'unauthenticated';
  if (status === 403) return 'forbidden';
  if (status === 404) return 'not_found';
  if (status === 409) return 'conflict';
  if (status === 429) return 'rate_limited';
  if (status === 400 || status === 422) return 'invalid';
  return 'api_error';
}
