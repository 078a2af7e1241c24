/** How /pipelines/stream is getting its snapshots (its `status` events). */
export type StreamStatus =
  { mode: 'polling'; connected: true } | { mode: 'none'; connected: false; reason: string };
