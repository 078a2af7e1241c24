// Refuses state-changing requests from another origin with 403 before they reach a server
// action. Next.js aborts such an action itself (its CSRF check) but answers 500, which reads as
// a dashboard fault in logs and monitoring; this answers what it is.
import { NextResponse, type NextRequest } from 'next/server';
import { crossOrigin } from './lib/request-origin';

export function proxy(request: NextRequest): NextResponse {
  if (
    request.method !== 'GET' &&
    request.method !== 'HEAD' &&
    crossOrigin(
      request.headers.get('origin'),
      request.headers.get('x-forwarded-host') ?? request.headers.get('host'),
    )
  ) {
    return new NextResponse('Cross-origin request refused', { status: 403 });
  }
  return NextResponse.next();
}

export const config = {
  matcher: ['/((?!_next/static|_next/image|favicon.ico).*)'],
};
