import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { gunzipSync } from 'node:zlib';
import { z } from 'zod';
import { encode, isChangeoverError, subjects } from '@changeover/contracts';
import { requestRpc } from '@changeover/messaging';
import { TEST_ADMIN_TOKEN, waitFor } from '@changeover/test-kit';
import { makeImage } from '../testing/image.fixtures.js';
import { buildPackage, digestOf, publisherKey, publishRequest, sign, startTestRegistry, type TestRegistry } from '../testing/registry.fixtures.js';

// Every route of the registry REST API against its role, the audit trail on its events, and its limits at and over each one.

const MAX_MODULE = 4096;
const MAX_MESSAGE = 4096;
const key = publisherKey('release');
const imagePkg = buildPackage('imaged', '1.0.0', [{ name: 'm', content: 'image module' }]);
let image: Buffer;
/** The image limit bounds the compressed body and the unpacked archive: this image unpacks to exactly the limit. */
let maxImage: number;
let t: TestRegistry;
const tokens = {} as Record<'viewer' | 'operator' | 'admin', { token: string; tokenId: string }>;

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- answers are checked field by field
type Json = any;
async function call(method: string, path: string, opts: { token?: string | undefined; body?: unknown; raw?: Uint8Array; contentType?: string } = {}): Promise<{ status: number; json: Json }> {
  const headers: Record<string, string> = {};
  if (opts.token) headers['authorization'] = `Bearer ${opts.token}`;
  const body = opts.raw ?? (opts.body === undefined ? undefined : JSON.stringify(opts.body));
  if (body !== undefined) headers['content-type'] = opts.contentType ?? 'application/json';
  const res = await fetch(`${t.baseUrl}${path}`, { method, headers, ...(body !== undefined ? { body } : {}) });
  const text = await res.text();
  let json: Json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = text;
  }
  return { status: res.status, json };
}
const enroll = (nodeId: string) => ({ nodeId, classId: 'web', processorType: 'x86_64', characteristics: { arch: 'x86_64', memoryMb: 1 } });

beforeAll(async () => {
  image = await makeImage({ update: { description: 'img', targets: [{ classes: ['web'], packages: [{ name: 'imaged', version: '1.0.0' }] }] }, packages: [sign(imagePkg, key)], blobs: imagePkg.blobs });
  maxImage = gunzipSync(image).length;
  expect(maxImage).toBeGreaterThan(image.length);
  t = await startTestRegistry({
    REGISTRY_TRUST_ROOTS: JSON.stringify({ release: key.publicKeyPem }),
    REGISTRY_MAX_MODULE_BYTES: String(MAX_MODULE),
    REGISTRY_MAX_IMAGE_BYTES: String(maxImage),
    REGISTRY_MAX_MESSAGE_BYTES: String(MAX_MESSAGE),
    REGISTRY_ENROLL_RATE_PER_S: '0.001',
    REGISTRY_ENROLL_BURST: '4',
    REGISTRY_HELLO_RATE_PER_S: '0.001',
    REGISTRY_HELLO_BURST: '2',
    CHANGEOVER_DB_STATEMENT_TIMEOUT_MS: '7000',
  });
  for (const role of ['viewer', 'operator', 'admin'] as const) {
    const r = await call('POST', '/tokens', { token: TEST_ADMIN_TOKEN, body: { name: `${role}-bot`, role } });
    expect(r.status).toBe(201);
    tokens[role] = r.json;
  }
});

afterAll(async () => {
  await t?.stop();
});

type Route = { method: string; path: string; role: 'viewer' | 'operator' | 'admin'; body?: () => unknown; raw?: () => Uint8Array };
let seq = 0;
const small = buildPackage('small', '1.0.0', [{ name: 'm', content: 'small module' }]);
const [smallDigest, smallBytes] = [...small.blobs][0]!;
const ROUTES: Route[] = [
  { method: 'GET', path: '/packages', role: 'viewer' },
  { method: 'POST', path: '/packages/get', role: 'viewer', body: () => ({ packages: [{ name: 'small', version: '1.0.0' }] }) },
  { method: 'GET', path: '/packages/small/1.0.0', role: 'viewer' },
  { method: 'POST', path: '/packages', role: 'operator', body: () => publishRequest(sign(buildPackage('p', `1.0.${++seq}`, [{ name: 'm', content: `m${seq}` }]), key), buildPackage('p', `1.0.${seq}`, [{ name: 'm', content: `m${seq}` }]).blobs) },
  { method: 'PUT', path: `/blobs/${smallDigest}`, role: 'operator', raw: () => smallBytes },
  { method: 'GET', path: `/blobs/${smallDigest}`, role: 'viewer' },
  { method: 'GET', path: '/nodes', role: 'viewer' },
  { method: 'GET', path: '/nodes/n-1', role: 'viewer' },
  { method: 'GET', path: '/nodes/n-1/inventory', role: 'viewer' },
  { method: 'POST', path: '/nodes', role: 'operator', body: () => enroll('n-1') },
  { method: 'POST', path: '/nodes/n-1/revoke', role: 'admin', body: () => ({}) },
  { method: 'GET', path: '/classes', role: 'viewer' },
  { method: 'GET', path: '/classes/web', role: 'viewer' },
  { method: 'PUT', path: '/classes/web', role: 'operator', body: () => ({ description: 'web servers', packages: [] }) },
  { method: 'POST', path: '/images', role: 'operator', raw: () => new Uint8Array([1, 2, 3]) },
  { method: 'POST', path: '/select-modules', role: 'viewer', body: () => ({ packages: [{ name: 'small', version: '1.0.0' }], nodes: [], classes: ['web'] }) },
  { method: 'GET', path: '/tokens', role: 'admin' },
  { method: 'POST', path: '/tokens', role: 'admin', body: () => ({ name: `t-${++seq}`, role: 'viewer' }) },
  { method: 'DELETE', path: '/tokens/tok_0000000000000000', role: 'admin' },
];
const weaker = { viewer: undefined, operator: 'viewer', admin: 'operator' } as const;
const send = (r: Route, token?: string) => call(r.method, r.path, { token, ...(r.body ? { body: r.body() } : {}), ...(r.raw ? { raw: r.raw(), contentType: 'application/octet-stream' } : {}) });

describe('registry REST API roles', () => {
  beforeAll(async () => {
    expect((await call('POST', '/packages', { token: tokens.operator.token, body: publishRequest(sign(small, key), small.blobs) })).status).toBe(201);
  });

  it.each(ROUTES.map((r) => [`${r.method} ${r.path}`, r] as const))('%s: no token 401, a weaker role 403, its role passes', async (_name, r) => {
    const none = await send(r);
    expect(none.status).toBe(401);
    expect(none.json).toMatchObject({ code: 'UNAUTHENTICATED' });
    expect((await send(r, 'chg_wrong')).status).toBe(401);
    const below = weaker[r.role];
    if (below) {
      const refused = await send(r, tokens[below].token);
      expect(refused.status).toBe(403);
      expect(refused.json).toMatchObject({ code: 'FORBIDDEN' });
    }
    const ok = await send(r, tokens[r.role].token);
    expect([401, 403]).not.toContain(ok.status);
    // Every mutating request that passed the role check is in the audit log, with its outcome.
    if (r.method !== 'GET') {
      const q = () => t.registry.db.query(`SELECT 1 AS hit FROM auth.audit_log WHERE service = 'registry' AND method = $1 AND path = $2 AND actor_token_id = $3 AND status = $4`, [r.method, r.path, tokens[r.role].tokenId, ok.status]);
      await waitFor(`audit row of ${r.method} ${r.path}`, async () => (await q()).length > 0);
    }
  });

  it('should keep health, readiness, metrics and the OpenAPI document open', async () => {
    for (const p of ['/health', '/health/live', '/health/ready', '/metrics', '/openapi.json']) expect((await call('GET', p)).status).toBe(200);
  });

  it('should refuse a body from a caller without a valid token before reading it', async () => {
    const r = await call('POST', '/packages', { raw: new Uint8Array(maxImage).fill(1) });
    expect(r.status).toBe(401);
    expect(t.registry.domain.counters.get('registry_requests_rejected_total', { code: 'UNAUTHENTICATED' })).toBeGreaterThan(0);
  });

  it('should record who published a package and who changed a class in the event metadata', async () => {
    const ledger = buildPackage('ledger', '1.0.0', [{ name: 'm', content: 'ledger' }]);
    expect((await call('POST', '/packages', { token: tokens.operator.token, body: publishRequest(sign(ledger, key), ledger.blobs) })).status).toBe(201);
    expect((await call('PUT', '/classes/audited', { token: tokens.admin.token, body: { description: 'audited class', packages: [] } })).status).toBe(200);
    const [published] = await t.registry.events.readStream('package-ledger');
    expect(published!.metadata).toMatchObject({ actor: 'operator-bot', actorTokenId: tokens.operator.tokenId, actorRole: 'operator' });
    const classEvents = await t.registry.events.readStream('class-audited');
    expect(classEvents.at(-1)!.metadata).toMatchObject({ actor: 'admin-bot', actorTokenId: tokens.admin.tokenId, actorRole: 'admin' });
    const rows = await t.registry.db.query<{ actor: string; status: number }>(`SELECT actor, status FROM auth.audit_log WHERE service = 'registry' AND path = '/classes/audited'`);
    expect(rows).toEqual([{ actor: 'admin-bot', status: 200 }]);
  });

  it('should attribute a REST enrollment to its caller', async () => {
    const stream = await t.registry.events.readStream('node-n-1');
    expect(stream.length).toBeGreaterThan(0);
    expect(stream[0]!.metadata).toMatchObject({ actor: 'operator-bot' });
  });
});

describe('registry limits', () => {
  it('should store a module blob at the size limit and refuse one byte over with 413 TOO_LARGE', async () => {
    const at = Buffer.alloc(MAX_MODULE, 7);
    expect((await call('PUT', `/blobs/${digestOf(at)}`, { token: tokens.operator.token, raw: at, contentType: 'application/octet-stream' })).status).toBe(201);
    const over = Buffer.alloc(MAX_MODULE + 1, 7);
    const r = await call('PUT', `/blobs/${digestOf(over)}`, { token: tokens.operator.token, raw: over, contentType: 'application/octet-stream' });
    expect(r.status).toBe(413);
    expect(r.json).toMatchObject({ code: 'TOO_LARGE' });
  });

  it('should import an image at the size limit and refuse one byte over with 413 TOO_LARGE', async () => {
    const at = await call('POST', '/images', { token: tokens.operator.token, raw: image, contentType: 'application/gzip' });
    expect(at.status).toBe(201);
    const over = await call('POST', '/images', { token: tokens.operator.token, raw: Buffer.alloc(maxImage + 1, 1), contentType: 'application/gzip' });
    expect(over.status).toBe(413);
    expect(over.json).toMatchObject({ code: 'TOO_LARGE' });
  });

  it('should bound every statement of the registry by CHANGEOVER_DB_STATEMENT_TIMEOUT_MS', async () => {
    expect(await t.registry.db.query(`SHOW statement_timeout`)).toEqual([{ statement_timeout: '7s' }]);
  });

  it('should answer a NATS request at the message limit and one byte over with TOO_LARGE', async () => {
    const sized = (n: number) => ({ name: 'x'.repeat(n - encode({ name: '' }).length) });
    const at = await requestRpc(t.nc, subjects.registry('list-packages'), sized(MAX_MESSAGE), z.unknown(), { timeoutMs: 5000 }).catch((e: unknown) => e);
    // At the limit the request is decoded: whatever it says, it is not refused for its size.
    expect(isChangeoverError(at) ? at.code : 'ok').not.toBe('TOO_LARGE');
    const over = await requestRpc(t.nc, subjects.registry('list-packages'), sized(MAX_MESSAGE + 1), z.unknown(), { timeoutMs: 5000 }).catch((e: unknown) => e);
    expect(isChangeoverError(over) && over.code).toBe('TOO_LARGE');
  });

  it('should reject an agent report over the message limit with TOO_LARGE, counted', async () => {
    t.nc.publish(subjects.agent('big-1', 'heartbeat'), encode({ pad: 'x'.repeat(MAX_MESSAGE) }));
    await waitFor('the oversized heartbeat counted', () => t.registry.domain.counters.get('registry_agent_reports_rejected_total', { report: 'heartbeat', code: 'TOO_LARGE' }) === 1);
  });

  it('should rate-limit enrollment over REST and NATS together with RATE_LIMITED, counted', async () => {
    const answers: string[] = [];
    for (let i = 0; i < 6 && !answers.includes('RATE_LIMITED'); i++) {
      const r = await call('POST', '/nodes', { token: tokens.operator.token, body: enroll(`rl-${i}`) });
      answers.push(r.status === 201 ? 'ok' : r.json.code);
    }
    expect(answers.at(-1)).toBe('RATE_LIMITED');
    expect(answers.slice(0, -1).every((a) => a === 'ok')).toBe(true);
    expect(t.registry.domain.counters.get('registry_requests_rejected_total', { code: 'RATE_LIMITED' })).toBe(1);
    // The NATS path shares the same budget.
    const viaNats = await requestRpc(t.nc, subjects.registry('enroll-node'), enroll('rl-nats'), z.unknown(), { timeoutMs: 5000 }).catch((e: unknown) => e);
    expect(isChangeoverError(viaNats) && viaNats.code).toBe('RATE_LIMITED');
  });

  it('should drop hello reports of one node past its burst as RATE_LIMITED, counted', async () => {
    for (let i = 0; i < 4; i++) t.nc.publish(subjects.agent('chatty-1', 'hello'), encode({ not: 'a hello' }));
    await waitFor('four hellos counted', () => t.registry.domain.counters.get('registry_agent_reports_rejected_total', { report: 'hello' }) >= 4);
    expect(t.registry.domain.counters.get('registry_agent_reports_rejected_total', { report: 'hello', code: 'RATE_LIMITED' })).toBe(2);
    expect(t.registry.domain.counters.get('registry_agent_reports_rejected_total', { report: 'hello', code: 'VALIDATION_FAILED' })).toBe(2);
  });
});
