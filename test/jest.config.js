import { workspaceJestConfig } from '../jest.base.js';

// The repo-level suite: checks that span the apps (the compose file against each app's config).
export default {
  ...workspaceJestConfig(import.meta.dirname),
  testMatch: ['<rootDir>/*.spec.ts'],
};
