// Typed errors of the engine: a code the caller can switch on, and a message with context.

export type EngineErrorCode =
  | 'INCOMPATIBLE_MODELS' // draft and target disagree on vocabulary or special tokens
  | 'PROMPT_TOO_LONG' // the prompt does not fit the context window
  | 'BAD_REQUEST' // a request option is out of range
  | 'PIPELINE_STALLED' // nothing in flight and nothing to send: a controller bug
  | 'PROTOCOL'; // a message broke the stage protocol (unknown node, out-of-order commit)

export class EngineError extends Error {
  constructor(
    readonly code: EngineErrorCode,
    message: string,
  ) {
    super(`${code}: ${message}`);
    this.name = 'EngineError';
  }
}
