// Response bodies in OpenAI's formats (completions, chat completions, streaming chunks).
import type { DoneEvent, FinishReason } from '@pipedec/contracts';

export type Kind = 'completion' | 'chat';

export interface OpenAiUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export function usageOf(done: DoneEvent): OpenAiUsage {
  const { promptTokens, completionTokens } = done.usage;
  return {
    prompt_tokens: promptTokens,
    completion_tokens: completionTokens,
    total_tokens: promptTokens + completionTokens,
  };
}

export function finishReason(r: FinishReason): string {
  return r; // 'stop' | 'length' as OpenAI's; 'cancelled' is said as it is
}

export function responseId(kind: Kind, requestId: string): string {
  return `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${requestId}`;
}

export function fullResponse(
  kind: Kind,
  requestId: string,
  model: string,
  created: number,
  text: string,
  done: DoneEvent,
) {
  const base = { id: responseId(kind, requestId), created, model, usage: usageOf(done) };
  if (kind === 'chat') {
    return {
      ...base,
      object: 'chat.completion',
      choices: [
        {
          index: 0,
          message: { role: 'assistant', content: text, refusal: null },
          logprobs: null,
          finish_reason: finishReason(done.finishReason),
        },
      ],
    };
  }
  return {
    ...base,
    object: 'text_completion',
    choices: [{ index: 0, text, logprobs: null, finish_reason: finishReason(done.finishReason) }],
  };
}

export function chunk(
  kind: Kind,
  requestId: string,
  model: string,
  created: number,
  text: string,
  finish: string | null,
  first = false,
) {
  const id = responseId(kind, requestId);
  if (kind === 'chat') {
    const delta: Record<string, string> = finish === null ? { content: text } : {};
    if (first) delta.role = 'assistant';
    return {
      id,
      object: 'chat.completion.chunk',
      created,
      model,
      choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
    };
  }
  return {
    id,
    object: 'text_completion',
    created,
    model,
    choices: [{ index: 0, text, logprobs: null, finish_reason: finish }],
  };
}
