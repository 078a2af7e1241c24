// Refuses state-changing requests from another origin with 403 before they reach a server
// action. Next.js aborts such an action itself (its CSRF check) but answers 500, which reads as
// a dashboard fault in logs and monitoring; this answers what it is.
import { NextResponse, type NextRequest } from 'next/server';
import { crossOrigin, PAGE_PATH_HEADER } from './lib/request-origin';

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
  // The page asked for, for a redirect to the login to bring the admin back to it. Always
  // set here, so a browser cannot supply its own.
  const forwarded = new Headers(request.headers);
  forwarded.set(PAGE_PATH_HEADER, `${request.nextUrl.pathname}${request.nextUrl.search}`);
  return NextResponse.next({ request: { headers: forwarded } });
}

export const config = {
  matcher: ['/((?!_next/static|_next/image|favicon.ico).*)'],
};
