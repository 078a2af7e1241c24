// The address an admin login is counted against. The dashboard calls the API from its own
// server, so without help every browser would share the dashboard's address (one lockout for
// all admins). The dashboard therefore forwards the browser's address in a header that the API
// believes only together with the shared DASHBOARD_FORWARD_SECRET; any other caller's header
// is ignored. X-Forwarded-For is read only from proxies TRUST_PROXY names (Express's req.ip).
import { createHash, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import type { Request } from 'express';

export const CLIENT_ADDRESS_HEADER = 'x-pipedec-client-address';
export const FORWARD_SECRET_HEADER = 'x-pipedec-forward-secret';

const digest = (s: string) => createHash('sha256').update(s).digest();

/** Strips the IPv4-mapped IPv6 form so one client has one address. */
function normalise(address: string): string {
  return address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
}

export function clientAddress(req: Request, forwardSecret: string | undefined): string {
  const forwarded = req.header(CLIENT_ADDRESS_HEADER)?.trim();
  const secret = req.header(FORWARD_SECRET_HEADER);
  if (
    forwarded &&
    isIP(forwarded) &&
    forwardSecret !== undefined &&
    secret !== undefined &&
    timingSafeEqual(digest(secret), digest(forwardSecret))
  ) {
    return normalise(forwarded);
  }
  return normalise(req.ip ?? req.socket.remoteAddress ?? 'unknown');
}
