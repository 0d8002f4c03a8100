import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { pgConnection, survivesRestarts } from '@changeover/event-store';
import { ApiTokenId, ChangeoverError, parse, type ApiTokenRecord, type CreatedApiToken } from '@changeover/contracts';
import { Role, type Principal } from './roles.js';
import { generateToken, hashToken } from './token-hash.js';

interface TokenRow {
  token_id: string;
  name: string;
  role: Role;
  created_at: Date;
  created_by: string;
  revoked_at: Date | null;
  revoked_by: string | null;
}

const toRecord = (r: TokenRow): ApiTokenRecord => ({
  tokenId: r.token_id,
  name: r.name,
  role: r.role,
  createdAt: r.created_at.toISOString(),
  createdBy: r.created_by,
  revokedAt: r.revoked_at ? r.revoked_at.toISOString() : null,
  revokedBy: r.revoked_by,
});

/** One audited mutating request. */
export interface AuditEntry {
  service: string;
  principal: Principal;
  method: string;
  path: string;
  status: number;
  errorCode?: string;
}

/** API tokens in Postgres (SHA-256 hashes only) and the audit log. */
export class TokenStore {
  private constructor(readonly pool: pg.Pool) {}

  /** A small pool of its own; every statement is bounded by `statementTimeoutMs`. */
  static open(url: string, opts: { statementTimeoutMs: number; max?: number }): TokenStore {
    // A connection dropped by a Postgres restart or failover must not crash the service; the next request reconnects.
    return new TokenStore(survivesRestarts(new pg.Pool({ ...pgConnection(url), max: opts.max ?? 3, statement_timeout: opts.statementTimeoutMs, connectionTimeoutMillis: opts.statementTimeoutMs, idleTimeoutMillis: 30_000 })));
  }

  /** Creates a token; its secret is in the answer and nowhere else. */
  async create(name: string, role: Role, createdBy: string): Promise<CreatedApiToken> {
    const token = generateToken();
    const tokenId = `tok_${randomBytes(8).toString('hex')}`;
    const { rows } = await this.pool.query<TokenRow>(
      `INSERT INTO auth.api_tokens (token_id, name, role, token_hash, created_by) VALUES ($1, $2, $3, $4, $5)
       RETURNING token_id, name, role, created_at, created_by, revoked_at, revoked_by`,
      [tokenId, name, role, hashToken(token), createdBy],
    );
    return { ...toRecord(rows[0]!), token };
  }

  async list(): Promise<ApiTokenRecord[]> {
    const { rows } = await this.pool.query<TokenRow>(`SELECT token_id, name, role, created_at, created_by, revoked_at, revoked_by FROM auth.api_tokens ORDER BY created_at, token_id`);
    return rows.map(toRecord);
  }

  /** Revokes a token at once (NOT_FOUND for an unknown id; revoking twice keeps the first revocation). */
  async revoke(tokenId: string, by: string): Promise<ApiTokenRecord> {
    const id = parse(ApiTokenId, tokenId, 'token id');
    const { rows } = await this.pool.query<TokenRow>(
      `UPDATE auth.api_tokens SET revoked_at = COALESCE(revoked_at, now()), revoked_by = COALESCE(revoked_by, $2) WHERE token_id = $1
       RETURNING token_id, name, role, created_at, created_by, revoked_at, revoked_by`,
      [id, by],
    );
    if (!rows[0]) throw new ChangeoverError('NOT_FOUND', `no token ${id}`);
    return toRecord(rows[0]);
  }

  /** The live token with this secret, if any. */
  async find(token: string): Promise<Principal | undefined> {
    const { rows } = await this.pool.query<Pick<TokenRow, 'token_id' | 'name' | 'role'>>(`SELECT token_id, name, role FROM auth.api_tokens WHERE token_hash = $1 AND revoked_at IS NULL`, [hashToken(token)]);
    const r = rows[0];
    return r ? { tokenId: r.token_id, name: r.name, role: r.role } : undefined;
  }

  async audit(e: AuditEntry): Promise<void> {
    await this.pool.query(
      `INSERT INTO auth.audit_log (service, actor, actor_token_id, actor_role, method, path, status, error_code) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
      [e.service, e.principal.name, e.principal.tokenId, e.principal.role, e.method, e.path.slice(0, 512), e.status, e.errorCode ?? null],
    );
  }

  close(): Promise<void> {
    return this.pool.end();
  }
}
