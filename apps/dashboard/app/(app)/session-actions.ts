'use server';
import { cookies } from 'next/headers';
import { redirect } from 'next/navigation';
import { rawApiCall, SESSION_COOKIE } from '@/lib/api-client';

/** Ends the session at the API (so the token stops working everywhere) and drops the cookie. */
export async function logout(): Promise<void> {
  try {
    await rawApiCall('POST', '/admin/logout');
  } catch {
    // The API may be down; the cookie still goes, and the session expires on its own.
  }
  (await cookies()).delete(SESSION_COOKIE);
  redirect('/login?signedOut=1');
}
