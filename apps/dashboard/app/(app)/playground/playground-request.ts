// What the playground page posts to /playground/stream. The browser names a key by id, and
// the API runs the request as that key (admin role), so no secret ever reaches the browser
// after its one-time display at creation.
import { z } from 'zod';

export const PLAYGROUND_METHODS = ['pipedec', 'stpp', 'pp', 'auto'] as const;
export type PlaygroundMethod = (typeof PLAYGROUND_METHODS)[number];

export const playgroundRequestSchema = z
  .object({
    tenantId: z.uuid({ error: 'Pick a key.' }),
    keyId: z.uuid({ error: 'Pick a key.' }),
    model: z
      .string()
      .min(1, { error: 'Name a model.' })
      .max(200, { error: 'The model name is too long.' }),
    prompt: z
      .string()
      .min(1, { error: 'Write a prompt.' })
      .max(20_000, { error: 'The prompt must be at most 20,000 characters.' }),
    method: z.enum(PLAYGROUND_METHODS, { error: 'Pick pipedec, stpp, pp or auto.' }),
    maxTokens: z
      .number({ error: 'Max tokens must be a whole number from 1 to 4096.' })
      .int({ error: 'Max tokens must be a whole number from 1 to 4096.' })
      .min(1, { error: 'Max tokens must be a whole number from 1 to 4096.' })
      .max(4096, { error: 'Max tokens must be a whole number from 1 to 4096.' }),
    seed: z
      .number()
      .int()
      .min(0)
      .max(2 ** 31 - 1),
  })
  .strict();
export type PlaygroundRequest = z.infer<typeof playgroundRequestSchema>;
