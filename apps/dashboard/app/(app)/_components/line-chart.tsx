// A small accessible SVG line chart: a title, y and x axes with round ticks, one line per
// series (gaps where a value is missing), a legend, and the numbers as a table on demand.
import { useId } from 'react';
import { formatAxis, formatUnit, type Unit } from '@/lib/units';
import { labelIndices, niceTicks } from './scale';

export interface Series {
  name: string;
  values: (number | null)[];
}

const COLORS = ['#2563eb', '#d97706', '#059669', '#dc2626', '#7c3aed'];
const W = 640;
const H = 220;
const PAD = { left: 64, right: 28, top: 12, bottom: 28 };

export function LineChart({
  title,
  description,
  x,
  series,
  unit,
  xLabel = 'time',
}: {
  title: string;
  description?: string;
  /** Epoch ms of each point (bucket starts). */
  x: number[];
  series: Series[];
  unit: Unit;
  xLabel?: 'time' | 'clock';
}) {
  const id = useId();
  const all = series.flatMap((s) => s.values.filter((v): v is number => v !== null));
  const empty = all.length === 0 || x.length === 0;
  const ticks = niceTicks(Math.max(0, ...all));
  const top = ticks[ticks.length - 1];
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const px = (i: number) => PAD.left + (x.length <= 1 ? plotW / 2 : (i / (x.length - 1)) * plotW);
  const py = (v: number) => PAD.top + plotH - (v / top) * plotH;
  const fmtX = (t: number) => {
    const d = new Date(t);
    return xLabel === 'clock'
      ? d.toISOString().slice(11, 19)
      : x.length > 1 && x[x.length - 1] - x[0] > 2 * 86400_000
        ? d.toISOString().slice(5, 10)
        : d.toISOString().slice(11, 16);
  };
  return (
    <figure className="chart" aria-labelledby={`${id}-t`}>
      <figcaption id={`${id}-t`} className="chart-title">
        {title}
      </figcaption>
      {empty ? (
        <p className="empty chart-empty">No data in this range yet.</p>
      ) : (
        <svg
          viewBox={`0 0 ${W} ${H}`}
          role="img"
          aria-labelledby={`${id}-st ${id}-d`}
          preserveAspectRatio="none"
        >
          <title id={`${id}-st`}>{title}</title>
          <desc id={`${id}-d`}>
            {description ??
              `${series.map((s) => s.name).join(', ')} per bucket from ${fmtX(x[0])} to ${fmtX(x[x.length - 1])}; highest ${formatUnit(unit, Math.max(...all))}.`}
          </desc>
          {ticks.map((t) => (
            <g key={t}>
              <line className="grid" x1={PAD.left} x2={W - PAD.right} y1={py(t)} y2={py(t)} />
              <text className="tick" x={PAD.left - 6} y={py(t) + 4} textAnchor="end">
                {formatAxis(unit, t)}
              </text>
            </g>
          ))}
          {labelIndices(x.length, 6).map((i) => (
            <text key={i} className="tick" x={px(i)} y={H - 8} textAnchor="middle">
              {fmtX(x[i])}
            </text>
          ))}
          <line className="axis" x1={PAD.left} x2={PAD.left} y1={PAD.top} y2={PAD.top + plotH} />
          <line
            className="axis"
            x1={PAD.left}
            x2={W - PAD.right}
            y1={PAD.top + plotH}
            y2={PAD.top + plotH}
          />
          {series.map((s, si) => (
            <g key={s.name} stroke={COLORS[si % COLORS.length]} fill={COLORS[si % COLORS.length]}>
              {segments(s.values).map((seg) => (
                <polyline
                  key={seg[0]}
                  className="line"
                  points={seg.map((i) => `${px(i)},${py(s.values[i]!)}`).join(' ')}
                />
              ))}
              {s.values.map((v, i) =>
                v !== null && isolated(s.values, i) ? (
                  <circle key={i} cx={px(i)} cy={py(v)} r={3} />
                ) : null,
              )}
            </g>
          ))}
        </svg>
      )}
      {series.length > 1 && !empty && (
        <ul className="legend" aria-hidden="true">
          {series.map((s, si) => (
            <li key={s.name}>
              <span className="swatch" style={{ background: COLORS[si % COLORS.length] }} />
              {s.name}
            </li>
          ))}
        </ul>
      )}
      {!empty && (
        <details className="chart-data">
          <summary>Show data</summary>
          <table>
            <thead>
              <tr>
                <th scope="col">{xLabel === 'clock' ? 'time (UTC)' : 'bucket (UTC)'}</th>
                {series.map((s) => (
                  <th key={s.name} scope="col">
                    {s.name}
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {x.map((t, i) => (
                <tr key={t}>
                  <th scope="row">{new Date(t).toISOString().slice(0, 16).replace('T', ' ')}</th>
                  {series.map((s) => (
                    <td key={s.name}>{formatUnit(unit, s.values[i] ?? null)}</td>
                  ))}
                </tr>
              ))}
            </tbody>
          </table>
        </details>
      )}
    </figure>
  );
}

/** Runs of consecutive non-null indices. */
function segments(values: (number | null)[]): number[][] {
  const out: number[][] = [];
  let cur: number[] = [];
  values.forEach((v, i) => {
    if (v === null) {
      if (cur.length) out.push(cur);
      cur = [];
    } else cur.push(i);
  });
  if (cur.length) out.push(cur);
  return out;
}

function isolated(values: (number | null)[], i: number): boolean {
  return (values[i - 1] ?? null) === null && (values[i + 1] ?? null) === null;
}
