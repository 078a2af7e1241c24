// Reads an OpenAI-style completion stream (server-sent events, `data: {...}` records ending
// with `data: [DONE]`) and calls back per text delta.

export interface CompletionChunk {
  /** The response id ("cmpl-<request id>"). */
  id: string | null;
  text: string;
  finishReason: string | null;
  usage: { promptTokens: number; completionTokens: number } | null;
}

interface RawChunk {
  id?: string;
  choices?: { text?: string; delta?: { content?: string }; finish_reason?: string | null }[];
  usage?: { prompt_tokens?: number; completion_tokens?: number } | null;
  error?: { message?: string };
}

export async function readCompletionStream(
  body: ReadableStream<Uint8Array>,
  onChunk: (c: CompletionChunk) => void,
): Promise<void> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end: number;
    while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
      const record = buffer.slice(0, end);
      buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, '');
      const data = record
        .split(/\r?\n/)
        .filter((l) => l.startsWith('data:'))
        .map((l) => l.slice(5).trimStart())
        .join('\n');
      if (!data) continue;
      if (data === '[DONE]') return;
      const chunk = JSON.parse(data) as RawChunk;
      if (chunk.error) throw new Error(chunk.error.message ?? 'the stream reported an error');
      const choice = chunk.choices?.[0];
      onChunk({
        id: chunk.id ?? null,
        text: choice?.text ?? choice?.delta?.content ?? '',
        finishReason: choice?.finish_reason ?? null,
        usage: chunk.usage
          ? {
              promptTokens: chunk.usage.prompt_tokens ?? 0,
              completionTokens: chunk.usage.completion_tokens ?? 0,
            }
          : null,
      });
    }
  }
}
