// This month's token usage against the quota, drawn from the shared quota arithmetic (the
// same module the API's admission guard uses), so the bar and the guard agree.
import { quotaUsage } from '@pipedec/contracts/quota';
import { formatCompact, formatPercent } from '@/lib/format';

export function QuotaBar({ used, limit, label }: { used: number; limit: number; label: string }) {
  const q = quotaUsage(used, limit);
  const text = `${formatCompact(q.used)} of ${formatCompact(q.limit)} tokens (${formatPercent(used / limit, 0)})`;
  return (
    <div className={`quota quota-${q.state}`}>
      <div
        className="quota-track"
        role="meter"
        aria-label={label}
        aria-valuemin={0}
        aria-valuemax={q.limit}
        aria-valuenow={Math.min(q.used, q.limit)}
        aria-valuetext={text}
      >
        <div className="quota-fill" style={{ width: `${(q.fraction * 100).toFixed(1)}%` }} />
      </div>
      <span className="quota-text">
        {text}
        {q.state === 'exceeded' && <strong> · over quota</strong>}
        {q.state === 'warning' && <span> · near quota</span>}
      </span>
    </div>
  );
}
