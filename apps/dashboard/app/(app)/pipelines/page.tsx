import { ADMIN_LIVE } from '@pipedec/contracts/http';
import type { Metadata } from 'next';
import { liveNamespaceUrl } from '@/lib/config';
import { ApiError } from '@/lib/errors';
import { loadPipelines } from '@/lib/pipelines';
import { ErrorState } from '../_components/error-state';
import { PipelinesClient } from './page-client';

export const metadata: Metadata = { title: 'Pipelines' };

export default async function PipelinesPage() {
  const initial = await loadPipelines().then(
    (data) => ({ ok: true as const, data }),
    (error: unknown) => {
      if (error instanceof ApiError) return { ok: false as const, error };
      throw error;
    },
  );
  return (
    <>
      <h1>Pipelines</h1>
      {!initial.ok && <ErrorState error={initial.error} what="the pipelines" />}
      <PipelinesClient
        initial={initial.ok ? initial.data : null}
        unavailable={!initial.ok}
        liveUrl={liveNamespaceUrl(ADMIN_LIVE.namespace)}
      />
    </>
  );
}
