/** How /pipelines/stream is getting its snapshots (its `status` events). */
export type StreamStatus =
  | { mode: 'socket'; connected: true }
  | { mode: 'polling'; connected: true; reason: string }
  | { mode: 'none'; connected: false; reason: string };
