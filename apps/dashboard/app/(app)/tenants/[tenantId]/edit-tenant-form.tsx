import type { Limits, Plan, Tenant } from '@/lib/schemas';
import { ActionForm } from '../../_components/action-form';
import { updateTenant } from '../actions';
import { LimitFields } from '../limit-fields';

export function EditTenantForm({
  tenant,
  plans,
  planLimits,
}: {
  tenant: Tenant;
  plans: Plan[];
  planLimits?: Limits;
}) {
  return (
    <ActionForm
      action={updateTenant.bind(null, tenant.id)}
      submitLabel="Save changes"
      className="stack"
    >
      <input type="hidden" name="expectedUpdatedAt" value={tenant.updatedAt} />
      <div className="row">
        <label>
          Plan
          <select name="plan" defaultValue={tenant.plan}>
            {plans.map((p) => (
              <option key={p.id} value={p.name}>
                {p.name}
              </option>
            ))}
          </select>
        </label>
        <label>
          Status
          <select name="status" defaultValue={tenant.status}>
            <option value="active">active</option>
            <option value="suspended">suspended (all keys refused)</option>
          </select>
        </label>
      </div>
      <p className="hint">Leave a limit blank to use the plan&apos;s value.</p>
      <LimitFields idPrefix="tenant" values={tenant.overrides} placeholders={planLimits} />
    </ActionForm>
  );
}
