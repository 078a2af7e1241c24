import { workspaceJestConfig } from '../../jest.base.js';

// The AR references run ONNX shards in the test process: they need Node's typed-array
// constructors in the test realm (see libs/model/jest.environment.js).
export default {
  ...workspaceJestConfig(import.meta.dirname),
  testEnvironment: `${import.meta.dirname}/../../libs/model/jest.environment.js`,
};
