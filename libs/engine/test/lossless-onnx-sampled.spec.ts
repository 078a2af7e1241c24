// Lossless parity on real ONNX shards, sampled (the rig and the matrix: onnx-rig.ts).
import { jest } from '@jest/globals';
import { closeRig, losslessSuite, openRig } from './onnx-rig.js';

jest.setTimeout(600_000);

beforeAll(openRig);
afterAll(closeRig);

losslessSuite('sampled', { temperature: 0.9, topP: 0.9, seed: 2024 });
