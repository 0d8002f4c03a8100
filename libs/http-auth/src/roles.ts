import { z } from 'zod';

/** The roles of the REST APIs, weakest first: each includes what the ones before it may do. */
export const ROLES = ['viewer', 'operator', 'admin'] as const;
export const Role = z.enum(ROLES);
export type Role = z.infer<typeof Role>;

const RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };

/** True when `has` is at least `needs`. */
export function roleAllows(has: Role, needs: Role): boolean {
  return RANK[has] >= RANK[needs];
}

/** Who made a request: the token's id and name, and its role. */
export interface Principal {
  tokenId: string;
  name: string;
  role: Role;
}

/** The event metadata that records who caused an event (the audit trail); a type alias, so it fits EventMetadata. */
export type AuditMetadata = {
  actor: string;
  actorTokenId: string;
  actorRole: Role;
};

export function auditMetadataOf(p: Principal): AuditMetadata {
  return { actor: p.name, actorTokenId: p.tokenId, actorRole: p.role };
}
