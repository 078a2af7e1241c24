import type { Metadata } from 'next';
import type { ReactNode } from 'react';
import './globals.css';

export const metadata: Metadata = {
  title: { default: 'PipeDec admin', template: '%s · PipeDec admin' },
  description: 'Tenants, keys, usage, billing and the live pipeline of the PipeDec service',
};

export default function RootLayout({ children }: { children: ReactNode }) {
  return (
    <html lang="en">
      <body>{children}</body>
    </html>
  );
}
