'use server';
import { adminLoginSchema } from '@pipedec/contracts/http';
import { cookies, headers } from 'next/headers';
import { redirect } from 'next/navigation';
import { apiCall, SESSION_COOKIE } from '@/lib/api-client';
import { config } from '@/lib/config';
import { ApiError } from '@/lib/errors';
import { raw, text } from '@/lib/form-data';
import { browserAddress, sameOriginPath, servedOverHttps } from '@/lib/request-origin';
import { loginResponseSchema } from '@/lib/schemas';

export interface LoginState {
  error: string | null;
  email: string;
}

/**
 * Opens an API session and keeps its token in an httpOnly cookie that expires with the
 * session, so the browser holds it without any script being able to read it.
 */
export async function login(_prev: LoginState, form: FormData): Promise<LoginState> {
  const email = text(form, 'email');
  const input = adminLoginSchema.safeParse({ email, password: raw(form, 'password') });
  if (!input.success) return { error: 'Enter an email address and a password.', email };
  const request = await headers();
  // The API counts failed logins per browser address; it believes this one only with the
  // secret it shares with the dashboard.
  const address = browserAddress(request.get('x-forwarded-for'));
  const secret = config().DASHBOARD_FORWARD_SECRET;
  let session;
  try {
    session = await apiCall('POST', '/admin/login', loginResponseSchema, {
      body: input.data,
      token: null,
      headers:
        address && secret
          ? { 'x-pipedec-client-address': address, 'x-pipedec-forward-secret': secret }
          : undefined,
    });
  } catch (error) {
    if (error instanceof ApiError && error.code === 'unauthenticated')
      return { error: 'Wrong email or password.', email };
    if (error instanceof ApiError && error.code === 'rate_limited')
      return { error: 'Too many failed attempts. Wait a few minutes and try again.', email };
    if (error instanceof ApiError && error.code === 'unreachable')
      return { error: 'The API is not reachable. Is the service running?', email };
    throw error;
  }
  (await cookies()).set(SESSION_COOKIE, session.token, {
    httpOnly: true,
    sameSite: 'lax',
    secure: config().SESSION_COOKIE_SECURE || servedOverHttps(request.get('x-forwarded-proto')),
    path: '/',
    expires: new Date(session.expiresAt),
  });
  redirect(sameOriginPath(text(form, 'next') || '/'));
}
