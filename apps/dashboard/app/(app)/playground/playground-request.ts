// What the playground page posts to /playground/stream. The browser names a key by id, and
// the API runs the request as that key, so the dashboard never needs the secret. Until the
// API offers that admin endpoint, the admin may paste the secret they copied at creation; it
// passes through the dashboard server for that one request and is never stored.
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
    secret: z.string().min(8).max(200).optional(),
  })
  .strict();
export type PlaygroundRequest = z.infer<typeof playgroundRequestSchema>;
