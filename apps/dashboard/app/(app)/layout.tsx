import type { ReactNode } from 'react';
import { load } from '@/lib/api-client';
import { adminMeSchema } from '@/lib/schemas';
import { logout } from './session-actions';
import { Nav } from './nav';

/** Every page behind the login: checks the session once per request and draws the frame. */
export default async function AppLayout({ children }: { children: ReactNode }) {
  const me = await load('/admin/me', adminMeSchema);
  return (
    <div className="frame">
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <span className="brand">PipeDec admin</span>
        <Nav />
        <form action={logout} className="who">
          <span title={`role: ${me.role}`}>
            {me.email} <span className="muted">({me.role})</span>
          </span>
          <button type="submit">Sign out</button>
        </form>
      </header>
      <main id="main" tabIndex={-1}>
        {children}
      </main>
    </div>
  );
}
