// Reading typed values out of FormData for the server actions.

export function text(form: FormData, name: string): string {
  return raw(form, name).trim();
}

/** The field as typed (passwords keep their spaces); '' when absent or a file. */
export function raw(form: FormData, name: string): string {
  const v = form.get(name);
  return typeof v === 'string' ? v : '';
}

/**
 * An optional whole number: "" gives `empty` (undefined on create, null on edit, which means
 * "use the plan's value"); anything else must be a non-negative integer.
 */
export function optionalInt<E extends null | undefined>(
  form: FormData,
  name: string,
  empty: E,
): number | E {
  const raw = text(form, name).replace(/[_,\s]/g, '');
  if (raw === '') return empty;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 0) throw new FormError(`${name} must be a whole number`);
  return n;
}

/**
 * A required whole number in [min, max]: "-1", "1.5" or "99999999" are refused here with the
 * field's range, before any date arithmetic or API call could fail on them.
 */
export function boundedFormInt(
  form: FormData,
  name: string,
  label: string,
  min: number,
  max: number,
): number {
  const n = Number(text(form, name).replace(/[_,\s]/g, ''));
  if (text(form, name) === '' || !Number.isInteger(n) || n < min || n > max) {
    throw new FormError(
      `${label} must be a whole number from ${min.toLocaleString('en-US')} to ${max.toLocaleString('en-US')}`,
    );
  }
  return n;
}

/** Dollars per 1000 tokens ("0.25") to integer micro-dollars (250000). */
export function dollarsToMicros(form: FormData, name: string): number {
  const raw = text(form, name);
  if (!/^\d+(\.\d{1,6})?$/.test(raw)) throw new FormError(`${name} must be a price like 0.25`);
  const [whole, frac = ''] = raw.split('.');
  return Number(whole) * 1_000_000 + Number(frac.padEnd(6, '0'));
}

export class FormError extends Error {
  readonly code = 'FORM_INVALID';
}
