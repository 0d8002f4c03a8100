export * from './postgres.js';
export * from './nats.js';
export * from './wait.js';
export * from './auth.js';
export * from './fuzz.js';
export * from './nats-cluster.js';
export * from './postgres-server.js';
