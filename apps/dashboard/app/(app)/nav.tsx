'use client';
import Link from 'next/link';
import { usePathname } from 'next/navigation';

const LINKS = [
  { href: '/', label: 'Overview' },
  { href: '/tenants', label: 'Tenants' },
  { href: '/keys', label: 'API keys' },
  { href: '/billing', label: 'Billing' },
  { href: '/pipelines', label: 'Pipelines' },
  { href: '/playground', label: 'Playground' },
  { href: '/audit', label: 'Audit log' },
] as const;

export function Nav() {
  const path = usePathname();
  return (
    <nav aria-label="Main">
      <ul>
        {LINKS.map((l) => {
          const current = l.href === '/' ? path === '/' : path.startsWith(l.href);
          return (
            <li key={l.href}>
              <Link href={l.href} aria-current={current ? 'page' : undefined}>
                {l.label}
              </Link>
            </li>
          );
        })}
      </ul>
    </nav>
  );
}
