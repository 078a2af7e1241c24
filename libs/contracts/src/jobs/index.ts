export * from './events.js';
export * from './generation-job.js';
export * from './keys.js';
