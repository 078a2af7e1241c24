import type { z } from 'zod';
import { Errors } from './errors.js';

/**
 * Validates a request body (or query) against its contract schema. The error names the
 * first offending field as `param` and lists every issue in the message.
 */
export function parseBody<S extends z.ZodType>(schema: S, input: unknown): z.infer<S> {
  const result = schema.safeParse(input ?? {});
  if (result.success) return result.data;
  const issues = result.error.issues;
  const first = issues[0];
  const param = fieldPath(first.path, first.code === 'unrecognized_keys' ? first.keys : undefined);
  throw Errors.invalid('invalid_body', issuesMessage(issues), param);
}

/** Every issue of a failed validation, each after the field it names: "max_tokens: ...; ...". */
export function issuesMessage(issues: readonly z.core.$ZodIssue[]): string {
  return issues
    .map((i) => {
      const p = fieldPath(i.path, i.code === 'unrecognized_keys' ? i.keys : undefined);
      return p ? `${p}: ${i.message}` : i.message;
    })
    .join('; ');
}

function fieldPath(path: readonly PropertyKey[], keys?: readonly string[]): string | null {
  const parts = path.map((p) => (typeof p === 'number' ? `[${p}]` : String(p)));
  if (keys && keys.length > 0) parts.push(keys[0]);
  if (parts.length === 0) return null;
  return parts.join('.').replaceAll('.[', '[');
}
