export * from './rpc-server.js';
export * from './rpc-client.js';
export * from './pubsub.js';
export * from './rejections.js';
export * from './nats-errors.js';
export { assertSubject } from './guards.js';
export * from './rate-limit.js';
export * from './streams.js';
export * from './failover.js';
