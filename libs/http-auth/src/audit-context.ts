import { AsyncLocalStorage } from 'node:async_hooks';
import { auditMetadataOf, type AuditMetadata, type Principal } from './roles.js';

const current = new AsyncLocalStorage<Principal>();

/** Runs `fn` with `p` as the caller every event appended inside it is attributed to. */
export function runAs<T>(p: Principal, fn: () => T): T {
  return current.run(p, fn);
}

/** The caller of the request being handled, if any. */
export function currentPrincipal(): Principal | undefined {
  return current.getStore();
}

/** Audit metadata of the request being handled (empty outside a request): spread into event metadata. */
export function currentAuditMetadata(): AuditMetadata | Record<string, never> {
  const p = current.getStore();
  return p ? auditMetadataOf(p) : {};
}

/** The request's audit metadata, or `{ actor: fallback }` outside a request (a NATS handler, a timer). */
export function auditMetadataOr(fallback: string): AuditMetadata | { actor: string } {
  const p = current.getStore();
  return p ? auditMetadataOf(p) : { actor: fallback };
}
