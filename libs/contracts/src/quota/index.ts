export * from './quota-usage.js';
