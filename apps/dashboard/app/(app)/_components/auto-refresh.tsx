'use client';
// Re-renders the page's server components every few seconds (router.refresh: new data, no
// reload, scroll and open details kept), so the overview stays current on a wall screen.
// The interval is a URL parameter (?refresh=30, 0 for off) so a view is still a link.
import { usePathname, useRouter, useSearchParams } from 'next/navigation';
import { useEffect } from 'react';
import { REFRESH_CHOICES } from '@/lib/refresh';

export function AutoRefresh({ seconds, renderedAt }: { seconds: number; renderedAt: string }) {
  const router = useRouter();
  const path = usePathname();
  const params = useSearchParams();
  useEffect(() => {
    if (seconds <= 0) return;
    const timer = setInterval(() => router.refresh(), seconds * 1000);
    return () => clearInterval(timer);
  }, [router, seconds]);
  return (
    <label className="small">
      Refresh
      <select
        value={seconds}
        onChange={(e) => {
          const next = new URLSearchParams(params.toString());
          next.set('refresh', e.target.value);
          router.replace(`${path}?${next.toString()}`);
        }}
      >
        {REFRESH_CHOICES.map((c) => (
          <option key={c.seconds} value={c.seconds}>
            {c.label}
          </option>
        ))}
      </select>
      <span className="muted" data-testid="updated-at" data-at={renderedAt}>
        {' '}
        Updated {renderedAt.slice(11, 19)} UTC
      </span>
    </label>
  );
}
