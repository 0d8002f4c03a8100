export * from './authority/authority.js';
export * from './permissions/node.permissions.js';
export { accountJwt, operatorJwt, systemAccountJwt, type MintedUser } from './credentials/claims.js';
export * from './credentials/revocation.js';
export * from './credentials/mint.js';
export * from './server/server-config.js';
export * from './server/push-account.js';
export * from './connect/node-connect.js';
export * from './module-store/object-reader.js';
