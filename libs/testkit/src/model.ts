// TEST HARNESS (`@pipedec/testkit/model`): what the tests of apps that never run a model (the
// api, the dashboard) need from @pipedec/model and @pipedec/engine, so that they import neither:
// a random checkpoint to serve, and the target's greedy text, the reference a served greedy
// completion must equal. (The import rules let such a test reach the model only through here.)
import { generateAR } from '@pipedec/engine';
import { loadTokenizer, openShard } from '@pipedec/model';

export { writeRandomCheckpoint, type RandomCheckpointOptions } from '@pipedec/model';

/** The whole target model in this process, decoding greedily. */
export interface GreedyReference {
  /** What the model alone writes after `prompt` (tokenized and detokenized as the api does). */
  text(prompt: string, maxTokens: number): Promise<string>;
  close(): Promise<void>;
}

export async function openGreedyReference(checkpointDir: string): Promise<GreedyReference> {
  const whole = await openShard({ checkpointDir, intraOpThreads: 1 });
  const tok = await loadTokenizer(checkpointDir);
  let n = 0;
  return {
    async text(prompt, maxTokens) {
      const res = await generateAR(whole, {
        requestId: `greedy-reference-${n++}`,
        prompt: tok.encode(prompt),
        maxTokens,
        sampling: { temperature: 0, topP: 1, seed: 0 },
      });
      return tok.decode(res.tokens, { skipSpecialTokens: true });
    },
    close: () => whole.close(),
  };
}
