// Shared Jest setup for every workspace: ESM TypeScript through SWC, with the
// workspace libs resolved to their sources so tests never need a build first.
import path from 'node:path';

const root = import.meta.dirname;

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
