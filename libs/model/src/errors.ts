// One error type for everything the model library refuses, with a code callers can branch on
// and a message that names the offending field, tensor or option.

export type ModelErrorCode =
  | 'CONFIG_INVALID'
  | 'CONFIG_UNSUPPORTED'
  | 'CHECKPOINT_MISSING'
  | 'SAFETENSORS_CORRUPT'
  | 'SHAPE_MISMATCH'
  | 'DTYPE_UNSUPPORTED'
  | 'LAYER_RANGE_INVALID'
  | 'KV_LIMIT'
  | 'UNKNOWN_PROVIDER'
  | 'BATCH_INVALID'
  | 'SEQUENCE_STATE'
  | 'TOKENIZER_INVALID'
  | 'RUNTIME_FAILED'
  | 'CLOSED';

export class ModelError extends Error {
  override readonly name = 'ModelError';
  constructor(
    readonly code: ModelErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${code}: ${message}`, options);
  }
}
