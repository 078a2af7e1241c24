// Worker thread of bench:draft's overlap section: the demo draft in its own ONNX Runtime
// session, so that its run can overlap stage 0's on the main thread (onnxruntime-node runs a
// session synchronously on the thread that calls it). Plain JavaScript on the built
// @pipedec/model: tsx's loader does not reach worker threads. One request at a time, in order.
import { parentPort, workerData } from 'node:worker_threads';

import { OnnxShard } from '@pipedec/model';

const shard = await OnnxShard.open({
  checkpointDir: workerData.checkpointDir,
  intraOpThreads: 1,
  proposals: true,
});

let queue = Promise.resolve();
parentPort.on('message', (m) => {
  queue = queue
    .then(async () => {
      if (m.op === 'forward') {
        const out = await shard.forward(m.seq, m.batch);
        parentPort.postMessage({ ids: out.top?.ids, logits: out.top?.logits, lse: out.top?.lse });
      } else if (m.op === 'commit') {
        shard.commit(m.seq, m.ids);
      } else if (m.op === 'prune') {
        shard.prune(m.seq, new Set(m.keep));
      } else if (m.op === 'close') {
        await shard.close();
        parentPort.close();
      }
    })
    .catch((e) => parentPort.postMessage({ error: String(e) }));
});
parentPort.postMessage('ready');
