export * from './local-api.js';
export * from './client.js';
