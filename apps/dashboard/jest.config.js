import { workspaceJestConfig } from '../../jest.base.js';

export default workspaceJestConfig(import.meta.dirname);
