// Jest runs tests in a separate V8 realm whose typed-array constructors differ from Node's.
// onnxruntime-node builds its output tensors in Node's realm and checks `instanceof
// Float32Array` in the test's realm, so every run fails ("A float32 tensor's data must be type
// of function Float32Array()"). Sharing Node's constructors with the test realm fixes it.
// Any workspace whose tests run ONNX shards can use this file as its testEnvironment.
import { TestEnvironment } from 'jest-environment-node';

const SHARED = [
  'ArrayBuffer',
  'SharedArrayBuffer',
  'DataView',
  'Int8Array',
  'Uint8Array',
  'Uint8ClampedArray',
  'Int16Array',
  'Uint16Array',
  'Int32Array',
  'Uint32Array',
  'Float32Array',
  'Float64Array',
  'BigInt64Array',
  'BigUint64Array',
];

export default class OnnxRuntimeEnvironment extends TestEnvironment {
  constructor(config, context) {
    super(config, context);
    for (const name of SHARED) this.global[name] = globalThis[name];
  }
}
