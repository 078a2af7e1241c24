'use client';
// A line chart drawn by Recharts (a maintained library: responsive width, axis ticks in the
// chart's unit, tooltips, legend) inside an accessible figure: a title, a text summary for
// screen readers and the numbers as a table on demand. Fractions (hit rate, utilisation,
// error rate) get a fixed 0-100 % axis; counts (queue depth, requests) whole-number ticks.
import { useId } from 'react';
import {
  CartesianGrid,
  Legend,
  Line,
  LineChart as RechartsLineChart,
  ResponsiveContainer,
  Tooltip,
  XAxis,
  YAxis,
} from 'recharts';
import { formatAxis, formatUnit, type Unit } from '@/lib/units';

export interface Series {
  name: string;
  values: (number | null)[];
}

const COLORS = ['#2563eb', '#d97706', '#059669', '#dc2626', '#7c3aed'];
const HEIGHT = 200;
const FRACTION_TICKS = [0, 0.25, 0.5, 0.75, 1];

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
  const long = x.length > 1 && x[x.length - 1] - x[0] > 2 * 86400_000;
  const fmtX = (t: number) => {
    const iso = new Date(t).toISOString();
    return xLabel === 'clock' ? iso.slice(11, 19) : long ? iso.slice(5, 10) : iso.slice(11, 16);
  };
  const data = x.map((t, i) => {
    const row: Record<string, number | null> = { t };
    series.forEach((s, si) => (row[`s${si}`] = s.values[i] ?? null));
    return row;
  });
  const summary =
    description ??
    (empty
      ? ''
      : `${series.map((s) => s.name).join(', ')} per ${xLabel === 'clock' ? 'second' : 'bucket'} from ${fmtX(x[0])} to ${fmtX(x[x.length - 1])} UTC; highest ${formatUnit(unit, Math.max(...all))}.`);
  return (
    <figure className="chart" aria-labelledby={`${id}-t`}>
      <figcaption id={`${id}-t`} className="chart-title">
        {title}
      </figcaption>
      {empty ? (
        <p className="empty chart-empty">No data in this range yet.</p>
      ) : (
        <div className="chart-plot" role="img" aria-label={`${title}: ${summary}`}>
          <ResponsiveContainer width="100%" height={HEIGHT}>
            <RechartsLineChart data={data} margin={{ top: 8, right: 12, bottom: 0, left: 0 }}>
              <CartesianGrid stroke="#eef1f5" vertical={false} />
              <XAxis
                dataKey="t"
                type="number"
                scale="time"
                domain={['dataMin', 'dataMax']}
                tickFormatter={fmtX}
                minTickGap={28}
                tick={{ fontSize: 11 }}
                stroke="#9aa4b2"
              />
              <YAxis
                width={58}
                tick={{ fontSize: 11 }}
                stroke="#9aa4b2"
                tickFormatter={(v: number) => formatAxis(unit, v)}
                allowDecimals={unit !== 'count'}
                {...(unit === 'fraction'
                  ? { domain: [0, 1], ticks: FRACTION_TICKS, allowDataOverflow: true }
                  : { domain: [0, 'auto'] })}
              />
              <Tooltip
                labelFormatter={(t) =>
                  `${new Date(Number(t)).toISOString().slice(0, 19).replace('T', ' ')} UTC`
                }
                formatter={(v) => formatUnit(unit, typeof v === 'number' ? v : null)}
              />
              {series.length > 1 && <Legend wrapperStyle={{ fontSize: 12 }} />}
              {series.map((s, si) => (
                <Line
                  key={s.name}
                  dataKey={`s${si}`}
                  name={s.name}
                  type="linear"
                  stroke={COLORS[si % COLORS.length]}
                  strokeWidth={2}
                  dot={x.length <= 2 ? { r: 3 } : false}
                  connectNulls={false}
                  isAnimationActive={false}
                />
              ))}
            </RechartsLineChart>
          </ResponsiveContainer>
        </div>
      )}
      {!empty && (
        <details className="chart-data">
          <summary>Show data</summary>
          <div className="table-wrap">
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
                    <th scope="row">
                      {new Date(t)
                        .toISOString()
                        .slice(0, xLabel === 'clock' ? 19 : 16)
                        .replace('T', ' ')}
                    </th>
                    {series.map((s) => (
                      <td key={s.name}>{formatUnit(unit, s.values[i] ?? null)}</td>
                    ))}
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </details>
      )}
    </figure>
  );
}
