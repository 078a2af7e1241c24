// `npm test` runs every workspace's suites (see jest.base.js for the shared setup).
export default {
  projects: [
    '<rootDir>/libs/*/jest.config.js',
    '<rootDir>/apps/*/jest.config.js',
    '<rootDir>/prisma/jest.config.js',
    '<rootDir>/test/jest.config.js',
  ],
};
