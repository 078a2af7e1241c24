import { workspaceJestConfig } from '../../jest.base.js';

// stages.spec.ts runs the target model in the test process (its AR reference): ONNX shards
// need Node's typed-array constructors in the test realm (see libs/model/jest.environment.js).
export default {
  ...workspaceJestConfig(import.meta.dirname),
  testEnvironment: `${import.meta.dirname}/../../libs/model/jest.environment.js`,
};
