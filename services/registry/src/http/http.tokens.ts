/** Injection token of the wired RegistryDomain. */
export const DOMAIN = 'REGISTRY_DOMAIN';

/** Injection token of the enrollment rate limiter (shared with the NATS enroll-node handler). */
export const ENROLL_LIMITER = 'REGISTRY_ENROLL_LIMITER';
