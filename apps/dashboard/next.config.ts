import type { NextConfig } from 'next';
import { securityHeaders } from './lib/security-headers';

// Server code imports only the leaf entry points of @pipedec/contracts (config, http, quota):
// the package root also loads gRPC and .proto files, which neither the browser nor the
// dashboard server needs.
const config: NextConfig = {
  poweredByHeader: false,
  reactStrictMode: true,
  headers: () => Promise.resolve([{ source: '/:path*', headers: securityHeaders }]),
};

export default config;
