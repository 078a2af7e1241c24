// Refusals of the stage wire protocol, with a code a stage can branch on and a message that
// names the request, the field and both values.

export type StageProtocolErrorCode = 'MESSAGE_INVALID' | 'TENSOR_SIZE' | 'DTYPE_UNSUPPORTED';

export class StageProtocolError extends Error {
  override readonly name = 'StageProtocolError';
  constructor(
    readonly code: StageProtocolErrorCode,
    message: string,
  ) {
    super(`${code}: ${message}`);
  }
}
