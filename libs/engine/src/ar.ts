// AR: the reference. The whole target model in one process, one token per forward pass,
// no tree, no pipeline: every other method must reproduce its tokens.

import { EngineError } from './errors.js';
import {
  contextFullResult,
  type GenerateRequest,
  type GenerateResult,
  emptyStats,
  planLength,
} from './run.js';
import { chooseToken, GREEDY } from './sampling.js';
import type { StageShard } from './stage.js';
import { ratio } from './stats.js';
import { type FinishReason, StopRules } from './stop.js';

export async function generateAR(
  model: StageShard,
  request: GenerateRequest,
): Promise<GenerateResult> {
  if (!model.isFirst || !model.isLast) {
    throw new EngineError('BAD_REQUEST', 'AR needs the whole model in one shard');
  }
  const info = model.info;
  const plan = planLength(request.prompt.length, request.maxTokens, info.maxPositions);
  if (plan.maxNew === 0) return contextFullResult(request, 'ar', 1);
  const t0 = performance.now();
  const seq = request.requestId;
  const sampling = request.sampling ?? GREEDY;
  const vocab = info.vocabSize;
  const stats = emptyStats('ar', 1, request.prompt.length);
  const stop = new StopRules({
    maxTokens: plan.maxNew,
    finishAtLimit: plan.finishAtLimit,
    eosTokenIds: request.eosTokenIds ?? info.eosTokenIds,
    stop: request.stop ?? [],
    text: request.text,
  });
  const tokenLogits: number[] = [];
  let finish: FinishReason = 'cancelled';
  let busyMs = 0;
  const forward = async (ids: number[], tokens: number[]) => {
    const t = performance.now();
    const out = await model.forward(seq, {
      nodeIds: Int32Array.from(ids),
      parentIds: Int32Array.from(ids, (id, i) => (i === 0 ? -1 : id - 1)),
      positions: Int32Array.from(ids),
      tokens: Int32Array.from(tokens),
    });
    model.commit(seq, ids);
    busyMs += performance.now() - t;
    stats.timesteps++;
    stats.stagePositions[0] = (stats.stagePositions[0] ?? 0) + ids.length;
    return out.logits!; // [ids, vocab]
  };
  try {
    // Node ids are positions: the sequence is a single chain.
    const chunk = request.prefillChunk ?? 32;
    const prompt = request.prompt;
    let logits: Float32Array = new Float32Array(0); // [rows, vocab] of the last forward
    for (let s = 0; s < prompt.length; s += chunk) {
      const ids = Array.from({ length: Math.min(chunk, prompt.length - s) }, (_, i) => s + i);
      logits = await forward(
        ids,
        ids.map((p) => prompt[p]),
      );
    }
    let row = (logits.length / vocab - 1) * vocab;
    let position = prompt.length;
    for (;;) {
      if (request.signal?.aborted) break;
      const token = chooseToken(logits, row, vocab, position, sampling);
      stats.committedTokens++;
      tokenLogits.push(logits[row + token]);
      if (stats.committedTokens === 1) {
        stats.prefillTimesteps = stats.timesteps;
        stats.ttftWallMs = performance.now() - t0;
      }
      const step = stop.push(token);
      if (step.emit) {
        request.onEvent?.({
          requestId: seq,
          token,
          index: stop.tokens.length - 1,
          timestep: stats.timesteps,
          simulatedMs: 0,
          text: step.delta,
        });
      }
      if (step.finish) {
        finish = step.finish;
        break;
      }
      logits = await forward([position], [token]);
      row = 0;
      position++;
    }
  } finally {
    model.release(seq);
  }
  stats.outputTokens = stop.tokens.length;
  stats.stageBusyMs = [busyMs];
  stats.wallMs = performance.now() - t0;
  stats.timestepsPerToken = ratio(
    stats.timesteps - stats.prefillTimesteps,
    stats.committedTokens - 1,
  );
  stats.tokensPerTimestep = ratio(1, stats.timestepsPerToken);
  return {
    requestId: seq,
    tokens: [...stop.tokens],
    text: stop.output,
    finishReason: finish,
    stats,
    tokenLogits,
  };
}
