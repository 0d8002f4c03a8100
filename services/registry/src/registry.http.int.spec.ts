import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { ImportImageReply, type PublishPackageRequest } from '@changeover/contracts';
import { putImageUpload } from '@changeover/messaging';
import { makeImage } from './testing/image.fixtures.js';
import { buildPackage, publisherKey, publishRequest, sign, startTestRegistry, storeSnapshot, TEST_AUTH_HEADER, type TestRegistry } from './testing/registry.fixtures.js';

jest.setTimeout(60_000);

const MAX_MODULE = 4096;

describe('registry REST API and bad input', () => {
  let t: TestRegistry;
  const key = publisherKey('release');
  const rogue = publisherKey('release');
  const api = async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
    const raw = body instanceof Uint8Array;
    const res = await fetch(`${t.baseUrl}${path}`, {
      method,
      headers: { ...TEST_AUTH_HEADER, ...(body === undefined ? headers : { 'content-type': raw ? 'application/octet-stream' : 'application/json', ...headers }) },
      body: body === undefined ? undefined : raw ? body : JSON.stringify(body),
    });
    const text = await res.text();
    let json: unknown = text;
    try {
      json = JSON.parse(text);
    } catch {
      // binary or text body
    }
    return { status: res.status, body: json as Record<string, unknown> & { code?: string; message?: string }, text };
  };
  /** Runs a request that must be refused, and checks that no table and no bucket changed. */
  const refused = async (run: () => Promise<{ status: number; body: { code?: string; message?: string } }>, status: number, code: string, message?: RegExp) => {
    const before = await storeSnapshot(t);
    const res = await run();
    expect({ status: res.status, code: res.body.code }).toEqual({ status, code });
    if (message) expect(res.body.message).toMatch(message);
    expect(await storeSnapshot(t)).toEqual(before);
    return res;
  };

  const app = buildPackage('app', '1.0.0', [
    { name: 'bin', processorType: 'x86_64', content: 'app x86 binary' },
    { name: 'bin', processorType: 'arm64', content: 'app arm binary' },
  ]);

  beforeAll(async () => {
    t = await startTestRegistry({ REGISTRY_TRUST_ROOTS: JSON.stringify({ release: key.publicKeyPem }), REGISTRY_MAX_MODULE_BYTES: String(MAX_MODULE) });
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('serves an OpenAPI document generated from the contracts', async () => {
    const res = await api('GET', '/openapi.json');
    expect(res.status).toBe(200);
    expect(Object.keys(res.body['paths'] as object)).toEqual(expect.arrayContaining(['/packages', '/blobs/{digest}', '/images', '/nodes', '/classes/{classId}', '/select-modules']));
    expect((res.body['components'] as { schemas: Record<string, unknown> }).schemas['PublishPackageRequest']).toMatchObject({ type: 'object' });
    expect((await api('GET', '/health')).body).toEqual({ status: 'ok' });
    expect((await api('GET', '/nope')).body.code).toBe('NOT_FOUND');
  });

  it('is live and ready with Postgres and NATS reachable and its migrations run', async () => {
    expect(await api('GET', '/health/live')).toMatchObject({ status: 200, body: { status: 'ok' } });
    expect(await api('GET', '/health/ready')).toMatchObject({ status: 200, body: { status: 'ok', checks: { postgres: true, nats: true, migrations: true } } });
  });

  it('streams blobs up, publishes the signed manifest that references them, and serves both back', async () => {
    for (const [digest, bytes] of app.blobs) expect((await api('PUT', `/blobs/${digest}`, bytes)).status).toBe(201);
    const [first] = [...app.blobs];
    expect((await api('PUT', `/blobs/${first![0]}`, first![1])).body).toMatchObject({ created: false });
    const pub = await api('POST', '/packages', { package: sign(app, key) });
    expect(pub.status).toBe(201);
    expect(pub.body).toMatchObject({ created: true, signatureVerdict: 'valid', signedBy: 'release' });
    expect((await api('POST', '/packages', { package: sign(app, key) })).status).toBe(200);
    expect((await api('GET', '/packages/app/1.0.0')).body).toMatchObject({ manifest: app.manifest, signature: { keyId: 'release' } });
    const dl = await api('GET', `/blobs/${first![0]}`);
    expect(dl.text).toBe(first![1].toString());
    expect(((await api('GET', '/packages?name=app')).body['packages'] as unknown[]).length).toBe(1);
    expect((await t.registry.events.readStream('package-app'))[0]!.data).toMatchObject({ signatureVerdict: 'valid', signedBy: 'release' });
  });

  it('refuses a tampered blob, uploaded or inline, with DIGEST_MISMATCH and stores nothing', async () => {
    const [digest] = [...app.blobs.keys()];
    const other = buildPackage('other', '1.0.0', [{ name: 'm', content: 'genuine' }]);
    const [od] = [...other.blobs.keys()];
    await refused(() => api('PUT', `/blobs/${od}`, Buffer.from('forged')), 422, 'DIGEST_MISMATCH');
    await refused(() => api('POST', '/packages', { package: sign(other, key), blobs: { [od!]: Buffer.from('forged!').toString('base64') } }), 422, 'DIGEST_MISMATCH');
    expect(digest).toBeDefined();
  });

  it('refuses unsigned, wrongly signed and altered packages when trust roots are set', async () => {
    const p = buildPackage('signed', '1.0.0', [{ name: 'm', content: 'signed module' }]);
    const req = (pkg: PublishPackageRequest['package']) => publishRequest(pkg, p.blobs);
    await refused(() => api('POST', '/packages', req(sign(p))), 422, 'SIGNATURE_INVALID', /not signed/);
    await refused(() => api('POST', '/packages', req(sign(p, rogue))), 422, 'SIGNATURE_INVALID', /does not match/);
    await refused(() => api('POST', '/packages', req(sign(p, publisherKey('someone')))), 422, 'UNTRUSTED_KEY');
    const altered = sign(p, key);
    await refused(() => api('POST', '/packages', req({ ...altered, manifest: { ...altered.manifest, description: 'changed after signing' } })), 422, 'SIGNATURE_INVALID');
    expect(t.registry.domain.counters.get('registry_publish_rejected_total', { code: 'SIGNATURE_INVALID' })).toBeGreaterThanOrEqual(3);
  });

  it('refuses a bad semver and an unknown processor type, naming the field', async () => {
    const p = buildPackage('semver', '1.0.0', [{ name: 'm', content: 'x' }]);
    const bad = { ...p.manifest, version: '1.0' };
    await refused(() => api('POST', '/packages', publishRequest({ manifest: bad }, p.blobs)), 400, 'VALIDATION_FAILED', /package\.manifest\.version/);
    const cpu = { ...p.manifest, modules: [{ ...p.manifest.modules[0]!, processorType: 'sparc' }] };
    await refused(() => api('POST', '/packages', { package: { manifest: cpu } }), 400, 'VALIDATION_FAILED', /modules\.0\.processorType/);
    await refused(() => api('POST', '/packages', { package: sign(buildPackage('r', '1.0.0', [{ name: 'm', content: 'x' }], { requires: { app: '>>1' } }), key) }), 400, 'VALIDATION_FAILED', /requires\.app/);
  });

  it('refuses a module blob over the size limit with TOO_LARGE', async () => {
    const big = buildPackage('big', '1.0.0', [{ name: 'm', content: 'x'.repeat(MAX_MODULE + 1) }]);
    const [d, bytes] = [...big.blobs][0]!;
    await refused(() => api('PUT', `/blobs/${d}`, bytes), 413, 'TOO_LARGE');
    await refused(() => api('POST', '/packages', publishRequest(sign(big, key), big.blobs)), 413, 'TOO_LARGE');
  });

  it('refuses a node id that is not subject-safe', async () => {
    await refused(() => api('POST', '/nodes', { nodeId: 'a.b.>', classId: 'web', processorType: 'x86_64', characteristics: { arch: 'x86_64', memoryMb: 1 } }), 400, 'VALIDATION_FAILED', /nodeId/);
    await refused(() => api('GET', '/nodes/a*b'), 400, 'VALIDATION_FAILED');
    expect((await api('POST', '/nodes', { nodeId: 'web-1', classId: 'web', processorType: 'x86_64', characteristics: { arch: 'x86_64', memoryMb: 1 } })).status).toBe(201);
    expect((await api('GET', '/nodes?classId=web&status=stale')).body['nodes']).toHaveLength(1);
  });

  it('lets exactly one of several concurrent publishes of the same version with different content win', async () => {
    const variants = Array.from({ length: 5 }, (_, i) => buildPackage('race', '1.0.0', [{ name: 'm', content: `variant ${i}` }]));
    const results = await Promise.all(variants.map((v) => api('POST', '/packages', publishRequest(sign(v, key), v.blobs))));
    const statuses = results.map((r) => r.status).sort();
    expect(statuses).toEqual([201, 409, 409, 409, 409]);
    const winner = variants[results.findIndex((r) => r.status === 201)]!;
    expect((await api('GET', '/packages/race/1.0.0')).body['manifest']).toEqual(winner.manifest);
    const stored = new Set(await t.registry.domain.blobs.list());
    const losers = variants.filter((v) => v !== winner).flatMap((v) => [...v.blobs.keys()]);
    expect(losers.filter((d) => stored.has(d))).toEqual([]);
    expect((await api('POST', '/packages', publishRequest(sign(variants[0] === winner ? variants[1]! : variants[0]!, key), new Map()))).status).toBe(409);
  });

  describe('update images', () => {
    const lib = buildPackage('lib', '2.0.0', [{ name: 'so', content: 'shared object' }], { provides: ['lib-api@2.0.0'] });
    const svc = buildPackage('svc', '3.0.0', [{ name: 'run', processorType: 'x86_64', content: 'service' }], { requires: { lib: '^2' }, consumes: ['lib-api@^2'] });
    const update = { description: 'fleet update', targets: [{ nodes: ['web-1'], packages: [{ name: 'svc', version: '3.0.0' }] }, { classes: ['web'], packages: [{ name: 'lib', version: '2.0.0' }] }] };
    const gzip = (extra: Partial<Parameters<typeof makeImage>[0]> = {}) => makeImage({ update, packages: [sign(lib, key), sign(svc, key)], blobs: new Map([...lib.blobs, ...svc.blobs]), ...extra });

    it('refuses an image with a missing blob, naming file and field, and stores nothing', async () => {
      const image = await makeImage({ update, packages: [sign(lib, key), sign(svc, key)], blobs: lib.blobs });
      await refused(() => api('POST', '/images', image), 400, 'VALIDATION_FAILED', /packages\/svc@3\.0\.0\.json: .*manifest\.modules\.0\.digest/);
      const listed = await gzip({ omitFiles: [`blobs/${[...svc.blobs.keys()][0]!.slice(7)}`] });
      await refused(() => api('POST', '/images', listed), 400, 'VALIDATION_FAILED', /update\.json: blobs\./);
    });

    it('refuses a truncated .tar.gz and stores nothing', async () => {
      const image = await gzip();
      await refused(() => api('POST', '/images', image.subarray(0, image.length - 40)), 400, 'VALIDATION_FAILED', /tar/);
    });

    it('stores nothing when one package of the image conflicts (all or nothing)', async () => {
      const clash = buildPackage('app', '1.0.0', [{ name: 'bin', content: 'not the published app' }]);
      const image = await makeImage({ update, packages: [sign(lib, key), sign(svc, key), sign(clash, key)], blobs: new Map([...lib.blobs, ...svc.blobs, ...clash.blobs]) });
      await refused(() => api('POST', '/images', image), 409, 'CONFLICT', /packages\/app@1\.0\.0\.json/);
    });

    it('imports a good image over REST and again (a no-op) over NATS, returning the update', async () => {
      const image = await gzip();
      const res = await api('POST', '/images', image, { 'content-type': 'application/gzip' });
      expect(res.status).toBe(201);
      expect(res.body).toMatchObject({ update, packages: [{ name: 'lib', version: '2.0.0' }, { name: 'svc', version: '3.0.0' }] });
      const before = await storeSnapshot(t);
      expect(before.packages.some((p) => p.startsWith('svc@3.0.0'))).toBe(true);
      for (const d of [...lib.blobs.keys(), ...svc.blobs.keys()]) expect(before.blobs).toContain(d);
      const viaNats = await t.rpc('import-image', { upload: await putImageUpload(t.nc, image) }, ImportImageReply);
      expect(viaNats.update).toEqual(update);
      expect(await storeSnapshot(t)).toEqual(before);
    });
  });
});
