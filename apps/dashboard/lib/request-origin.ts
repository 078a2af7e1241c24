// What the dashboard server knows about the browser's request, from the headers Next.js
// passes to server actions: where a sign-in may send the browser afterwards, the browser's
// address (forwarded to the API for login limiting) and whether the page is served over HTTPS
// (the session cookie is then Secure). Pure functions, so the rules have unit tests.

/**
 * `next` as a same-origin path, or '/'. Browsers read `/\evil.example` like `//evil.example`
 * (another host), and a scheme or control character can smuggle one in too, so the value is
 * resolved against a placeholder origin and kept only if it stays there.
 */
export function sameOriginPath(next: string): string {
  if (!next.startsWith('/') || next.startsWith('//') || next.includes('\\') || hasControl(next)) {
    return '/';
  }
  const base = 'http://dashboard.invalid';
  let url: URL;
  try {
    url = new URL(next, base);
  } catch {
    return '/';
  }
  return url.origin === base ? `${url.pathname}${url.search}${url.hash}` : '/';
}

function hasControl(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

/**
 * The browser's address: the last X-Forwarded-For entry, the one the nearest hop wrote (Next.js
 * writes the socket's address when no proxy did). Behind a proxy, it must set the header for
 * this to be the browser's and not a value the browser chose.
 */
export function browserAddress(forwardedFor: string | null): string | null {
  const last = forwardedFor?.split(',').at(-1)?.trim();
  return last ? last : null;
}

/** Served over HTTPS: by the proxy in front (X-Forwarded-Proto) or by Next.js itself. */
export function servedOverHttps(forwardedProto: string | null): boolean {
  return forwardedProto?.split(',')[0]?.trim().toLowerCase() === 'https';
}

/**
 * A browser request from a page of another origin: its Origin's host is not the host it was
 * sent to. No Origin (same-origin GETs, scripts) is not cross-origin; the literal "null"
 * (sandboxed frames, some redirects) is.
 */
export function crossOrigin(origin: string | null, host: string | null): boolean {
  if (origin === null) return false;
  if (host === null) return true;
  try {
    return new URL(origin).host !== host.split(',')[0].trim();
  } catch {
    return true;
  }
}

/** Set by proxy.ts on every request: the path and query the browser asked for. */
export const PAGE_PATH_HEADER = 'x-pipedec-page-path';

/**
 * Where a request without a valid session goes: the login, noting an ended session, with the
 * page asked for as next (a same-origin path only; "/" is left out) so sign-in returns to it.
 */
export function loginPath(expired: boolean, page: string | null): string {
  const q = new URLSearchParams();
  if (expired) q.set('expired', '1');
  const next = page ? sameOriginPath(page) : '/';
  if (next !== '/' && !next.startsWith('/login')) q.set('next', next);
  const s = q.toString();
  return s ? `/login?${s}` : '/login';
}
