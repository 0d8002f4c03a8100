import { ChangeoverError, type EnrollNodeReply, type EnrollNodeRequest, type NodeNatsCredentials, type NodeRecord, type RevokeNodeReply } from '@changeover/contracts';
import { accountJwt, mintNodeCredentials, pushAccountJwt, type Authority, type Revocation } from '@changeover/nats-auth';
import type { SqlPool } from '../db/sql.js';
import type { Counters, Logger } from '../observability.js';
import type { NodeService } from './node.service.js';

interface CredentialRow {
  user_public_key: string;
  node_id: string;
  revoked_at: Date | null;
}

// One revocation at a time across registry instances: each push carries the whole list read under the lock.
const REVOCATION_LOCK = 7_351_001;

/**
 * Node identities on NATS (DESIGN §4, §10): with the NATS authority configured, enrollment mints
 * the node's own user (it may publish only `changeover.agent.<node>.>`, hear only its node, class
 * and inbox subjects, read modules), and revocation pushes the account JWT carrying the whole
 * revocation list to the servers. Only public keys are stored; the creds go to the caller once.
 */
export class NodeIdentityService {
  constructor(
    private readonly db: SqlPool,
    private readonly authority: Authority | undefined,
    private readonly opts: { natsServers: string | string[]; credsTtlS: number; pushTimeoutMs?: number },
    private readonly counters: Counters,
    private readonly log: Logger,
  ) {}

  get enabled(): boolean {
    return this.authority !== undefined;
  }

  /** Mints and records credentials for an enrolled node; undefined when the registry holds no authority. */
  async issue(node: Pick<NodeRecord, 'nodeId' | 'classId'>, now = new Date()): Promise<NodeNatsCredentials | undefined> {
    if (!this.authority) return undefined;
    const expiresAt = this.opts.credsTtlS > 0 ? Math.floor(now.getTime() / 1000) + this.opts.credsTtlS : undefined;
    const c = await mintNodeCredentials(this.authority, { nodeId: node.nodeId, classId: node.classId, ...(expiresAt ? { expiresAt } : {}) });
    await this.db.query(`INSERT INTO registry_node_credentials (user_public_key, node_id, issued_at, expires_at) VALUES ($1, $2, $3, $4)`, [
      c.userPublicKey,
      node.nodeId,
      now,
      expiresAt ? new Date(expiresAt * 1000) : null,
    ]);
    this.counters.inc('registry_node_credentials_issued_total');
    this.log.info({ nodeId: node.nodeId, classId: node.classId, userPublicKey: c.userPublicKey }, 'node credentials issued');
    return { creds: c.creds, userPublicKey: c.userPublicKey, inboxPrefix: c.inboxPrefix };
  }

  /**
   * Revokes a node's credentials (all of them, or all but the newest with `keepLatest`, to finish
   * a rotation) and pushes the whole list to the servers, which close the revoked connections and
   * refuse those keys from then on. A failed push changes nothing and answers UNAVAILABLE.
   */
  async revoke(nodeId: string, opts: { keepLatest?: boolean; now?: Date } = {}): Promise<RevokeNodeReply> {
    const authority = this.requireAuthority();
    const now = opts.now ?? new Date();
    return this.db.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1)', [REVOCATION_LOCK]);
      const issued = await tx.query<CredentialRow & { issued_at: Date }>(`SELECT user_public_key, node_id, revoked_at, issued_at FROM registry_node_credentials WHERE node_id = $1 ORDER BY issued_at DESC, user_public_key`, [nodeId]);
      if (issued.length === 0) throw new ChangeoverError('NOT_FOUND', `node ${nodeId} holds no NATS credentials issued by this registry`, { nodeId });
      const targets = issued.slice(opts.keepLatest ? 1 : 0).filter((r) => r.revoked_at === null).map((r) => r.user_public_key);
      if (targets.length > 0) await tx.query(`UPDATE registry_node_credentials SET revoked_at = $2 WHERE user_public_key = ANY($1::text[])`, [targets, now]);
      const list = await this.revocations(tx);
      // Stored and pushed together: a failed push rolls the revocation back and answers UNAVAILABLE, so a retry starts clean.
      await this.push(authority, list);
      this.counters.inc('registry_node_credentials_revoked_total', targets.length);
      this.log.warn({ nodeId, revokedKeys: targets, revocations: list.length }, 'node credentials revoked');
      return { nodeId, revokedKeys: targets, revocations: list.length };
    });
  }

  /** Pushes the stored revocation list (at start-up, so a server that missed a push catches up). */
  async pushStored(): Promise<number> {
    const authority = this.requireAuthority();
    const list = await this.revocations(this.db);
    if (list.length > 0) await this.push(authority, list);
    return list.length;
  }

  private async revocations(sql: Pick<SqlPool, 'query'>): Promise<Revocation[]> {
    const rows = await sql.query<CredentialRow>(`SELECT user_public_key, node_id, revoked_at FROM registry_node_credentials WHERE revoked_at IS NOT NULL ORDER BY user_public_key`);
    return rows.map((r) => ({ userPublicKey: r.user_public_key, nodeId: r.node_id, revokedAt: Math.floor(new Date(r.revoked_at!).getTime() / 1000) }));
  }

  private async push(authority: Authority, list: Revocation[]): Promise<void> {
    try {
      await pushAccountJwt(authority, await accountJwt(authority, list), { servers: this.opts.natsServers, timeoutMs: this.opts.pushTimeoutMs ?? 5_000 });
      this.counters.inc('registry_revocation_pushes_total', 1, { outcome: 'ok' });
    } catch (e) {
      this.counters.inc('registry_revocation_pushes_total', 1, { outcome: 'failed' });
      throw e;
    }
  }

  private requireAuthority(): Authority {
    if (!this.authority) throw new ChangeoverError('FEATURE_NOT_ACTIVE', 'node credentials are not managed here: set REGISTRY_NATS_AUTHORITY');
    return this.authority;
  }
}

/** Enrolls a node (idempotent) and, with the NATS authority configured, hands it a fresh NATS identity. */
export async function enrollNode(d: { nodes: NodeService; identities: NodeIdentityService }, req: EnrollNodeRequest): Promise<EnrollNodeReply> {
  const node = await d.nodes.enroll(req);
  const natsCredentials = await d.identities.issue(node);
  return natsCredentials ? { ...node, natsCredentials } : node;
}
