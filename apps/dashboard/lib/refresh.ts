// The overview's auto-refresh choices, read from ?refresh= (seconds, 0 for off). A plain
// module so the server page and the client control share it.
export const REFRESH_CHOICES = [
  { seconds: 0, label: 'Off' },
  { seconds: 5, label: 'Every 5 s' },
  { seconds: 30, label: 'Every 30 s' },
  { seconds: 60, label: 'Every minute' },
] as const;
export const DEFAULT_REFRESH_S = 30;

export function refreshSeconds(v: unknown): number {
  const n = typeof v === 'string' ? Number(v) : DEFAULT_REFRESH_S;
  return REFRESH_CHOICES.some((c) => c.seconds === n) ? n : DEFAULT_REFRESH_S;
}
