export {};
export * from './stage/index.js';
