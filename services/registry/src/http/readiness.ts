export { readinessOf, type Readiness } from '@changeover/telemetry';

/** Injection token of the readiness probe. */
export const READINESS = 'REGISTRY_READINESS';
