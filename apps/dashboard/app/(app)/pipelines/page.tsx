import type { Metadata } from 'next';
import { tryLoad } from '@/lib/api-client';
import { pipelinesSnapshotSchema } from '@/lib/schemas';
import { ErrorState } from '../_components/error-state';
import { PipelinesClient } from './page-client';

export const metadata: Metadata = { title: 'Pipelines' };

export default async function PipelinesPage() {
  const initial = await tryLoad('/admin/pipelines', pipelinesSnapshotSchema);
  return (
    <>
      <h1>Pipelines</h1>
      {!initial.ok && <ErrorState error={initial.error} what="the pipelines" />}
      <PipelinesClient initial={initial.ok ? initial.data : null} unavailable={!initial.ok} />
    </>
  );
}
