export * from './local-api.js';
export * from './client.js';
export * from './groups.js';
