export {};
export * from './config/index.js';
export * from './stage/index.js';
