// PP: plain pipeline parallelism. One token per pass: the target's token at the root is
// committed and sent back into stage 0, so every token costs S timesteps.

import type { Verdict } from './messages.js';
import type { Pipeline } from './pipeline.js';
import { type GenerateRequest, type GenerateResult, openRun, RequestRun } from './run.js';

export async function generatePP(
  pipeline: Pipeline,
  request: GenerateRequest,
): Promise<GenerateResult> {
  const opened = openRun(pipeline, request, 'pp');
  if (!(opened instanceof RequestRun)) return opened; // the prompt fills the context
  const run = opened;
  let root = { id: run.promptRoot, position: run.prompt.length - 1 };
  let next: { id: number; token: number; position: number } | null = null; // to inject
  try {
    await run.loop({
      onTick() {
        if (!run.prefillDone) return run.nextPrefillPacket(0);
        if (!next) return null;
        const p = run.packet(0, [-1], [next.id], [next.position], [next.token]);
        root = next;
        next = null;
        return p;
      },
      onVerdict(v: Verdict) {
        if (run.handlePrefillVerdict(v, 0)) return;
        const i = v.nodeIds.indexOf(root.id);
        if (i < 0) return;
        run.decide(0, [...run.pendingChain, root.id], 'all');
        run.pendingChain = [];
        if (run.commitToken(v.tokens[i], v.logits[i])) {
          next = { id: root.id + 1, token: v.tokens[i], position: root.position + 1 };
        }
      },
    });
  } catch (err) {
    await run.close();
    throw err;
  }
  return run.close();
}
