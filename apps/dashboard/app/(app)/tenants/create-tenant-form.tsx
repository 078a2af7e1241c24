import type { Plan } from '@/lib/schemas';
import { ActionForm } from '../_components/action-form';
import { createTenant } from './actions';
import { LimitFields } from './limit-fields';

export function CreateTenantForm({ plans }: { plans: Plan[] }) {
  return (
    <ActionForm
      action={createTenant}
      submitLabel="Create tenant"
      pendingLabel="Creating…"
      className="stack"
    >
      <div className="row">
        <label>
          Name
          <input name="name" required maxLength={100} autoComplete="off" />
        </label>
        <label>
          Plan
          <select name="plan" required defaultValue={plans[0]?.name}>
            {plans.map((p) => (
              <option key={p.id} value={p.name}>
                {p.name}
              </option>
            ))}
          </select>
        </label>
      </div>
      <details>
        <summary>Override the plan&apos;s limits (optional)</summary>
        <LimitFields idPrefix="new-tenant" />
      </details>
    </ActionForm>
  );
}
