import { z } from 'zod';

/** Every error body of apps/api, in OpenAI's shape. */
export const errorBodySchema = z
  .object({
    error: z
      .object({
        type: z.string(),
        code: z.string().nullable(),
        message: z.string(),
        param: z.string().nullable(),
      })
      .strict(),
  })
  .strict();
export type ErrorBody = z.infer<typeof errorBodySchema>;
