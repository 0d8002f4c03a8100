/** Injection token of the wired RegistryDomain. */
export const DOMAIN = 'REGISTRY_DOMAIN';
