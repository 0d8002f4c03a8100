import type { IncomingMessage } from 'node:http';
import { ChangeoverError } from '@changeover/contracts';

const RANK = { viewer: 0, operator: 1, admin: 2 } as const;
type Role = keyof typeof RANK;

/** Bearer tokens with roles; with no tokens configured every caller is `anonymous` with every role. */
export class Authz {
  constructor(private readonly tokens: Map<string, { name: string; role: Role }>) {}

  /** The caller's name (the audit trail's actor), or UNAUTHENTICATED / FORBIDDEN. */
  actor(req: IncomingMessage, needs: Role): string {
    if (this.tokens.size === 0) return 'anonymous';
    const header = req.headers.authorization ?? '';
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    const who = m ? this.tokens.get(m[1]!) : undefined;
    if (!who) throw new ChangeoverError('UNAUTHENTICATED', 'a valid bearer token is required');
    if (RANK[who.role] < RANK[needs]) throw new ChangeoverError('FORBIDDEN', `${who.name} (${who.role}) may not do this: ${needs} role needed`);
    return who.name;
  }
}
