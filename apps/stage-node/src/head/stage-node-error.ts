// Errors of the stage node, with a code the job runner maps to a retryable or final failure.

export type StageNodeErrorCode =
  | 'PIPELINE_BROKEN' // a stage left (or failed) while a request was in flight: retryable
  | 'STAGE_FAILED' // a stage could not compute a packet (its error message attached)
  | 'SHUTTING_DOWN' // this node is draining: retryable on another pipeline
  | 'MODEL_MISMATCH' // the job asks for a model this pipeline does not serve
  | 'JOB_INVALID' // the job payload does not parse
  | 'KV_BUDGET'; // the request could never fit in a stage's KV memory (the API refuses these)

export class StageNodeError extends Error {
  override readonly name = 'StageNodeError';
  constructor(
    readonly code: StageNodeErrorCode,
    message: string,
  ) {
    super(`${code}: ${message}`);
  }

  get retryable(): boolean {
    return this.code === 'PIPELINE_BROKEN' || this.code === 'SHUTTING_DOWN';
  }
}
