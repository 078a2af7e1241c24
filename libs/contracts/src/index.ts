export {};
export * from './config/index.js';
export * from './stage/index.js';
export * from './jobs/index.js';
export * from './http/index.js';
export * from './quota/index.js';
