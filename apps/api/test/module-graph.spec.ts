// The API never runs a model (shared docs/architecture.md): it tokenizes prompts through
// `@pipedec/model/tokenizer` only, so loading its whole module graph (AppModule and every
// module it imports) must never load onnxruntime-node, the ONNX runtime with its native
// binding. The positive control proves the probe sees a load: the package's barrel (here through
// @pipedec/testkit/model, the one way api tests reach a model) loads it.
import { jest } from '@jest/globals';

const loaded: string[] = [];
jest.unstable_mockModule('onnxruntime-node', () => {
  loaded.push(new Error().stack ?? 'onnxruntime-node');
  return { InferenceSession: class {}, Tensor: class {}, env: {} };
});

describe("the API's module graph", () => {
  it('loads AppModule without onnxruntime-node', async () => {
    const { AppModule } = await import('../src/app.module.js');
    expect(AppModule).toBeDefined();
    expect(loaded).toEqual([]);
  });

  it('sees onnxruntime-node when something does load it (the probe can fail)', async () => {
    await import('@pipedec/testkit/model'); // loads @pipedec/model's barrel
    expect(loaded).toHaveLength(1);
  });
});
