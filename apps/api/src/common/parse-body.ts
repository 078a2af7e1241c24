// Request validation with messages an operator understands. A refused body names its first
// offending field as `param` (the JSON key, for programs) and says in words what each field
// needs ("requests per minute must be a whole number from 1 to 1,000,000"), never a schema
// path or zod's developer wording.
import { fieldLabel } from '@pipedec/contracts';
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
  throw Errors.invalid('invalid_body', operatorMessage(issues), param);
}

/** Every issue in words, one sentence each, duplicates (one field, one rule) once. */
export function operatorMessage(issues: readonly z.core.$ZodIssue[]): string {
  return [...new Set(issues.map(sentence))].join('; ');
}

/**
 * One issue as a sentence. The contracts write their own messages for the fields an operator
 * fills in (lowercase, naming the field and the range); zod's defaults (capitalised) are
 * rewritten here from the issue's code.
 */
function sentence(issue: z.core.$ZodIssue): string {
  if (/^[a-z]/.test(issue.message)) return issue.message;
  const label = labelOf(issue.path);
  switch (issue.code) {
    case 'unrecognized_keys':
      return issue.keys.length === 1
        ? `"${issue.keys[0]}" is not a field this request accepts`
        : `${issue.keys.map((k) => `"${k}"`).join(', ')} are not fields this request accepts`;
    case 'invalid_type':
      return issue.input === undefined
        ? `${label} is required`
        : `${label} must be ${article(issue.expected)}`;
    case 'too_small':
    case 'too_big': {
      const bound = Number(issue.code === 'too_small' ? issue.minimum : issue.maximum);
      const side = issue.code === 'too_small' ? 'at least' : 'at most';
      if (issue.origin === 'string') return `${label} must be ${side} ${bound} characters long`;
      if (issue.origin === 'array') return `${label} must have ${side} ${bound} items`;
      return `${label} must be ${side} ${bound.toLocaleString('en-US')}`;
    }
    case 'invalid_value':
      return `${label} must be one of: ${issue.values.map(String).join(', ')}`;
    case 'invalid_format':
      return `${label} must be a valid ${issue.format === 'datetime' ? 'date and time (ISO 8601)' : issue.format}`;
    case 'invalid_union':
      return `${label} has the wrong shape`;
    case 'custom':
    case 'invalid_element':
    case 'invalid_key':
    case 'not_multiple_of':
      return `${label} is not valid`;
  }
}

function article(expected: string): string {
  if (expected === 'int') return 'a whole number';
  if (expected === 'array') return 'a list';
  if (expected === 'object') return 'an object';
  return /^[aeiou]/.test(expected) ? `an ${expected}` : `a ${expected}`;
}

/** ["messages", 0, "content"] → "messages item 1 content"; [] → "the request body". */
function labelOf(path: readonly PropertyKey[]): string {
  if (path.length === 0) return 'the request body';
  return path
    .map((p) => (typeof p === 'number' ? `item ${p + 1}` : fieldLabel(String(p))))
    .join(' ');
}

/**
 * Every issue of a failed validation, each after the field it names: "max_tokens: ...; ...".
 * For socket acknowledgements, read by programs rather than operators.
 */
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
