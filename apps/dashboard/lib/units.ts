// How a chart or cell formats its values; a plain string so server pages can pass it to
// client components.
import { formatCompact, formatMicros, formatMs, formatPercent } from './format';

export type Unit = 'count' | 'ms' | 'usd-micros' | 'fraction' | 'ratio';

export function formatUnit(unit: Unit, v: number | null): string {
  if (v === null || !Number.isFinite(v)) return '–';
  switch (unit) {
    case 'count':
      return formatCompact(v);
    case 'ms':
      return formatMs(v);
    case 'usd-micros':
      return formatMicros(v);
    case 'fraction':
      return formatPercent(v, 0);
    case 'ratio':
      return v.toFixed(2);
  }
}

/** Shorter labels for axis ticks: "$0.00006" rather than "$0.000060". */
export function formatAxis(unit: Unit, v: number): string {
  if (unit === 'usd-micros') return v === 0 ? '$0' : `$${Number((v / 1_000_000).toPrecision(2))}`;
  return formatUnit(unit, v);
}
