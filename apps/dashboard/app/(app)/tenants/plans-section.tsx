import { formatInt, formatMicros } from '@/lib/format';
import type { Plan } from '@/lib/schemas';
import { ActionForm } from '../_components/action-form';
import { savePlan } from './actions';
import { LIMIT_LABELS, LimitFields } from './limit-fields';

const price = (micros: number) => (micros / 1_000_000).toFixed(6).replace(/0{1,4}$/, '');

function PlanFields({ plan, idPrefix }: { plan?: Plan; idPrefix: string }) {
  return (
    <>
      <div className="row">
        {!plan && (
          <label>
            Name
            <input name="name" required maxLength={100} autoComplete="off" />
          </label>
        )}
        <label>
          Queue priority
          <input name="priority" inputMode="numeric" defaultValue={plan?.priority ?? 0} />
        </label>
        <label>
          Input price <span className="hint">$ per 1k tokens</span>
          <input
            name="priceInput"
            required
            inputMode="decimal"
            defaultValue={plan ? price(plan.priceInputPer1kMicros) : ''}
          />
        </label>
        <label>
          Output price <span className="hint">$ per 1k tokens</span>
          <input
            name="priceOutput"
            required
            inputMode="decimal"
            defaultValue={plan ? price(plan.priceOutputPer1kMicros) : ''}
          />
        </label>
      </div>
      <LimitFields idPrefix={idPrefix} values={plan} required />
    </>
  );
}

export function PlansSection({ plans }: { plans: Plan[] }) {
  return (
    <section aria-labelledby="plans-h">
      <h2 id="plans-h">Plans, limits and prices</h2>
      {plans.length === 0 ? (
        <p className="empty">No plans yet.</p>
      ) : (
        <div className="table-wrap">
          <table>
            <thead>
              <tr>
                <th scope="col">Plan</th>
                <th scope="col" className="num">
                  Input / 1k
                </th>
                <th scope="col" className="num">
                  Output / 1k
                </th>
                {Object.values(LIMIT_LABELS).map((l) => (
                  <th key={l} scope="col" className="num">
                    {l}
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {plans.map((p) => (
                <tr key={p.id}>
                  <th scope="row">{p.name}</th>
                  <td className="num">{formatMicros(p.priceInputPer1kMicros)}</td>
                  <td className="num">{formatMicros(p.priceOutputPer1kMicros)}</td>
                  {(Object.keys(LIMIT_LABELS) as (keyof typeof LIMIT_LABELS)[]).map((f) => (
                    <td key={f} className="num">
                      {formatInt(p[f])}
                    </td>
                  ))}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <div className="grid-2" style={{ marginTop: '1rem' }}>
        {plans.map((p) => (
          <details key={p.id} className="card">
            <summary>Edit plan {p.name}</summary>
            <ActionForm
              action={savePlan.bind(null, p.name)}
              submitLabel={`Save ${p.name}`}
              className="stack"
            >
              <PlanFields plan={p} idPrefix={`plan-${p.name}`} />
            </ActionForm>
          </details>
        ))}
        <details className="card">
          <summary>New plan</summary>
          <ActionForm
            action={savePlan.bind(null, null)}
            submitLabel="Create plan"
            className="stack"
          >
            <PlanFields idPrefix="plan-new" />
          </ActionForm>
        </details>
      </div>
    </section>
  );
}
