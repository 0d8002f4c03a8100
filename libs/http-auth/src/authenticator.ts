import { ChangeoverError } from '@changeover/contracts';
import type { AuthConfig } from './auth.config.js';
import { roleAllows, type Principal, type Role } from './roles.js';
import { hashToken, sameHash } from './token-hash.js';

/** Looks a token secret up (the TokenStore in production). */
export interface TokenLookup {
  find(token: string): Promise<Principal | undefined>;
}

export const ANONYMOUS: Principal = { tokenId: 'anonymous', name: 'anonymous', role: 'admin' };
export const BOOTSTRAP: Principal = { tokenId: 'bootstrap', name: 'bootstrap-admin', role: 'admin' };

const BEARER = /^Bearer ([A-Za-z0-9_.~+/=-]{1,512})$/i;

/** Turns an Authorization header into a principal, or refuses with UNAUTHENTICATED / FORBIDDEN. */
export class Authenticator {
  private readonly bootstrapHash: string | undefined;

  constructor(
    readonly config: Pick<AuthConfig, 'enabled' | 'adminToken'>,
    private readonly tokens: TokenLookup,
  ) {
    this.bootstrapHash = config.adminToken ? hashToken(config.adminToken) : undefined;
  }

  get enabled(): boolean {
    return this.config.enabled;
  }

  async authenticate(header: string | string[] | undefined): Promise<Principal> {
    if (!this.config.enabled) return ANONYMOUS;
    const m = typeof header === 'string' ? BEARER.exec(header.trim()) : null;
    if (!m) throw new ChangeoverError('UNAUTHENTICATED', 'a bearer token is required (Authorization: Bearer <token>)');
    const token = m[1]!;
    if (this.bootstrapHash && sameHash(hashToken(token), this.bootstrapHash)) return BOOTSTRAP;
    const found = await this.tokens.find(token);
    if (!found) throw new ChangeoverError('UNAUTHENTICATED', 'unknown or revoked token');
    return found;
  }

  /** The principal if it holds `needs`, else FORBIDDEN naming the role needed. */
  async authorize(header: string | string[] | undefined, needs: Role): Promise<Principal> {
    const p = await this.authenticate(header);
    if (!roleAllows(p.role, needs)) throw new ChangeoverError('FORBIDDEN', `${p.name} (${p.role}) may not do this: the ${needs} role is needed`, { needs, has: p.role });
    return p;
  }
}
