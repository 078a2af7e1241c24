// Lossless parity on real ONNX shards, greedy (the rig and the matrix: onnx-rig.ts).
import { jest } from '@jest/globals';
import { closeRig, losslessSuite, openRig } from './onnx-rig.js';

jest.setTimeout(600_000);

beforeAll(openRig);
afterAll(closeRig);

losslessSuite('greedy', { temperature: 0, topP: 1, seed: 0 });
