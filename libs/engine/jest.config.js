import { workspaceJestConfig } from '../../jest.base.js';

// The ONNX shard tests need Node's typed-array constructors in the test realm (see the file).
export default {
  ...workspaceJestConfig(import.meta.dirname),
  testEnvironment: `${import.meta.dirname}/../model/jest.environment.js`,
};
