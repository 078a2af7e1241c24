// Response headers next.config.ts sends with every page (kept here so tests import them
// without loading Next's configuration types).

/**
 * Sent with every page: no other site may frame the dashboard (clickjacking), forms post only
 * to it, no plugins, and browsers must not guess content types. Scripts are not restricted by
 * source: Next.js inlines its bootstrap scripts, which would need a nonce per request.
 */
export const securityHeaders = [
  {
    key: 'Content-Security-Policy',
    value: "frame-ancestors 'none'; form-action 'self'; base-uri 'self'; object-src 'none'",
  },
  { key: 'X-Content-Type-Options', value: 'nosniff' },
  { key: 'X-Frame-Options', value: 'DENY' },
  { key: 'Referrer-Policy', value: 'same-origin' },
];
