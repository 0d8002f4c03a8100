import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { createTestDatabase, type TestDatabase } from '@changeover/test-kit';
import { isChangeoverError } from '@changeover/contracts';
import { loadAuthConfig } from './auth.config.js';
import { migrateAuth } from './auth.migration.js';
import { Authenticator, BOOTSTRAP } from './authenticator.js';
import { withStatementTimeout } from './statement-timeout.js';
import { hashToken, TOKEN_PATTERN } from './token-hash.js';
import { TokenStore } from './token-store.js';

let db: TestDatabase;
let store: TokenStore;
const ADMIN = 'bootstrap-token-for-this-test-0123456789abcdef';

beforeAll(async () => {
  db = await createTestDatabase('httpauth');
  expect(await migrateAuth(db.url)).toEqual(['AuthSchema1764100000000']);
  // A second start migrates nothing.
  expect(await migrateAuth(db.url)).toEqual([]);
  store = TokenStore.open(db.url, { statementTimeoutMs: 5000 });
});

afterAll(async () => {
  await store?.close();
  await db?.drop();
});

const codeOf = async (p: Promise<unknown>) => p.then(() => 'ok', (e: unknown) => (isChangeoverError(e) ? e.code : `untyped: ${String(e)}`));

describe('API tokens in Postgres', () => {
  it('should store only the SHA-256 of a created token and show the secret once', async () => {
    const created = await store.create('ci-bot', 'operator', 'bootstrap-admin');
    expect(created.token).toMatch(TOKEN_PATTERN);
    expect(created).toMatchObject({ name: 'ci-bot', role: 'operator', createdBy: 'bootstrap-admin', revokedAt: null });
    const { rows } = await store.pool.query(`SELECT * FROM auth.api_tokens WHERE token_id = $1`, [created.tokenId]);
    expect(rows[0].token_hash).toBe(hashToken(created.token));
    expect(JSON.stringify(rows[0])).not.toContain(created.token);
    const listed = (await store.list()).find((t) => t.tokenId === created.tokenId)!;
    expect(listed).not.toHaveProperty('token');
    expect(await store.find(created.token)).toEqual({ tokenId: created.tokenId, name: 'ci-bot', role: 'operator' });
  });

  it('should refuse a revoked token at once and keep who revoked it', async () => {
    const created = await store.create('leaver', 'admin', 'bootstrap-admin');
    const auth = new Authenticator({ enabled: true }, store);
    expect((await auth.authenticate(`Bearer ${created.token}`)).name).toBe('leaver');
    const revoked = await store.revoke(created.tokenId, 'alice');
    expect(revoked).toMatchObject({ revokedBy: 'alice' });
    expect(revoked.revokedAt).not.toBeNull();
    expect(await codeOf(auth.authenticate(`Bearer ${created.token}`))).toBe('UNAUTHENTICATED');
    expect(await codeOf(store.revoke('tok_0000000000000000', 'alice'))).toBe('NOT_FOUND');
    expect(await codeOf(store.revoke('../etc', 'alice'))).toBe('VALIDATION_FAILED');
  });

  it('should answer 401 without or with a wrong token and 403 below the role needed', async () => {
    const viewer = await store.create('watcher', 'viewer', 'bootstrap-admin');
    const auth = new Authenticator({ enabled: true, adminToken: ADMIN }, store);
    expect(await codeOf(auth.authorize(undefined, 'viewer'))).toBe('UNAUTHENTICATED');
    expect(await codeOf(auth.authorize('Basic abc', 'viewer'))).toBe('UNAUTHENTICATED');
    expect(await codeOf(auth.authorize('Bearer chg_nope', 'viewer'))).toBe('UNAUTHENTICATED');
    expect(await codeOf(auth.authorize(`Bearer ${viewer.token}`, 'operator'))).toBe('FORBIDDEN');
    expect(await auth.authorize(`Bearer ${viewer.token}`, 'viewer')).toMatchObject({ name: 'watcher', role: 'viewer' });
    expect(await auth.authorize(`Bearer ${ADMIN}`, 'admin')).toEqual(BOOTSTRAP);
  });

  it('should let every caller in as an anonymous admin only when auth is explicitly off', async () => {
    expect(loadAuthConfig({}).enabled).toBe(true);
    expect(loadAuthConfig({ CHANGEOVER_AUTH: 'off' }).enabled).toBe(false);
    const off = new Authenticator(loadAuthConfig({ CHANGEOVER_AUTH: 'off' }), store);
    expect(await off.authorize(undefined, 'admin')).toMatchObject({ name: 'anonymous', role: 'admin' });
  });

  it('should bound every statement with statement_timeout', async () => {
    const c = new pg.Client({ connectionString: withStatementTimeout(db.url, 150) });
    await c.connect();
    try {
      expect((await c.query('SHOW statement_timeout')).rows[0].statement_timeout).toBe('150ms');
      await expect(c.query('SELECT pg_sleep(2)')).rejects.toMatchObject({ code: '57014' });
    } finally {
      await c.end();
    }
  });
});
