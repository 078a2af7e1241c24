export * from './admin.js';
export * from './errors.js';
export * from './generation.js';
export * from './pipeline-batch.js';
export * from './pipelines.js';
