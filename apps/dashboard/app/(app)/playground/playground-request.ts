// What the playground page posts to /playground/stream. The browser names a key by id, and
// the API runs the request as that key (admin role), so no secret ever reaches the browser
// after its one-time display at creation.
import { z } from 'zod';

export const PLAYGROUND_METHODS = ['pipedec', 'stpp', 'pp'] as const;
export type PlaygroundMethod = (typeof PLAYGROUND_METHODS)[number];

export const playgroundRequestSchema = z
  .object({
    tenantId: z.uuid(),
    keyId: z.uuid(),
    model: z.string().min(1).max(200),
    prompt: z.string().min(1).max(20_000),
    method: z.enum(PLAYGROUND_METHODS),
    maxTokens: z.number().int().min(1).max(4096),
    seed: z
      .number()
      .int()
      .min(0)
      .max(2 ** 31 - 1),
  })
  .strict();
export type PlaygroundRequest = z.infer<typeof playgroundRequestSchema>;
