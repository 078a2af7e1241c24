// Shared Jest setup for every workspace: ESM TypeScript through SWC, with the
// workspace libs resolved to their sources so tests never need a build first.
import path from 'node:path';

const root = import.meta.dirname;

// ONNX Runtime 1.30 on Linux starts Microsoft's telemetry client in every process that creates a
// session: a background thread keeping its events in an SQLite file shared by every process of
// the user (~/.cache/Microsoft/DeveloperTools/.onnxruntime/onnxruntime.db; offline, nothing is
// uploaded and events pile up). At process exit, after the last line of JavaScript, the
// runtime's static destructors flush that store (writes, fsync, SQLite locks on the file the
// other worker also uses) and can wait for its thread in 50 ms sleeps: time no open-handle
// detector sees, spent inside jest's 500 ms grace for a worker to exit ("A worker process has
// failed to exit gracefully", #20). Tests have nothing to report, so they opt out. Set here, in
// the parent, before any worker forks: workers inherit it, and the runtime reads it when it
// starts. libs/model's own default (onnx-runtime.ts) does not reach it under jest: a test file's
// process.env is its own copy, not the worker's environment (strace: 3 opens of the store
// without this line, none with it). (The rest of a worker's exit is V8 freeing its heap.)
process.env.ORT_DISABLE_TELEMETRY ??= '1';

/** @param {string} dir the workspace folder */
export function workspaceJestConfig(dir) {
  return {
    displayName: path.relative(root, dir),
    rootDir: dir,
    testEnvironment: 'node',
    extensionsToTreatAsEsm: ['.ts'],
    testMatch: ['<rootDir>/src/**/*.spec.ts', '<rootDir>/test/**/*.spec.ts'],
    moduleNameMapper: {
      '^@pipedec/(contracts|model|engine|testkit)$': `${root}/libs/$1/src/index.ts`,
      // Subpath exports (`@pipedec/model/tokenizer`, `@pipedec/testkit/local-cluster`).
      // A subpath is a file (`src/tokenizer.ts`) or a folder (`src/config/index.ts`).
      '^@pipedec/(contracts|model|engine|testkit)/([a-z-]+)$': [
        `${root}/libs/$1/src/$2.ts`,
        `${root}/libs/$1/src/$2/index.ts`,
      ],
      '^@pipedec/db$': `${root}/prisma/src/index.ts`,
      '^(\\.{1,2}/.*)\\.js$': '$1',
    },
    transform: {
      '^.+\\.ts$': [
        '@swc/jest',
        {
          jsc: {
            target: 'es2023',
            parser: { syntax: 'typescript', decorators: true },
            transform: { legacyDecorator: true, decoratorMetadata: true },
          },
          module: { type: 'es6' },
        },
      ],
    },
  };
}
