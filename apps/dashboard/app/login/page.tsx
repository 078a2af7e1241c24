import type { Metadata } from 'next';
import { LoginForm } from './login-form';

export const metadata: Metadata = { title: 'Sign in' };

export default async function LoginPage({
  searchParams,
}: {
  searchParams: Promise<Record<string, string | string[] | undefined>>;
}) {
  const params = await searchParams;
  const expired = params.expired === '1';
  const signedOut = params.signedOut === '1';
  const next = typeof params.next === 'string' ? params.next : '/';
  return (
    <main className="login">
      <div className="card login-card">
        <h1>PipeDec admin</h1>
        {expired && (
          <p className="notice" role="status">
            Your session has ended. Sign in again to continue.
          </p>
        )}
        {signedOut && (
          <p className="notice" role="status">
            You are signed out.
          </p>
        )}
        <LoginForm next={next} />
      </div>
    </main>
  );
}
