import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { Objm } from '@nats-io/obj';
import { GetPackagesReply, IMAGE_UPLOAD_BUCKET, ImportImageReply, isChangeoverError } from '@changeover/contracts';
import { deleteImageUpload, discardImageUpload, putImageUpload } from '@changeover/messaging';
import { connect } from '@nats-io/transport-node';
import { metricSum, TEST_AUTH_HEADER } from '@changeover/test-kit';
import { scrape } from '../testing/fuzz.setup.js';
import { makeImage } from '../testing/image.fixtures.js';
import { buildPackage, publisherKey, sign, startTestRegistry, storeSnapshot, type TestRegistry } from '../testing/registry.fixtures.js';

// Images far over NATS's 1 MiB max payload go through the upload object store in chunks and are
// imported by reference; tampered ones are refused with a typed, counted error and leave nothing.

jest.setTimeout(120_000);

const MAX_MODULE = 6 * 1024 * 1024;
const key = publisherKey('release');
const rogue = publisherKey('release');
// 5 MB of base64 text from random bytes: the image stays ~3.8 MB after gzip, well over one NATS message.
const big = buildPackage('big', '1.0.0', [{ name: 'payload', processorType: 'x86_64', content: randomBytes(3_750_000).toString('base64') }]);
const small = buildPackage('small', '1.0.0', [{ name: 'cfg', content: 'small module' }]);
const update = (name: string) => ({ description: `image ${name}`, targets: [{ classes: ['web'], packages: [{ name, version: '1.0.0' }] }] });

let t: TestRegistry;

beforeAll(async () => {
  t = await startTestRegistry({ REGISTRY_TRUST_ROOTS: JSON.stringify({ release: key.publicKeyPem }), REGISTRY_MAX_MODULE_BYTES: String(MAX_MODULE) });
});
afterAll(async () => {
  await t?.stop();
});

const importUpload = async (image: Buffer) => t.rpc('import-image', { upload: await putImageUpload(t.nc, image) }, ImportImageReply);
const rejectedCount = async (code: string) => metricSum(await scrape(t), 'changeover_registry_images_rejected_total', { code });
const uploads = async () => (await (await new Objm(t.nc).open(IMAGE_UPLOAD_BUCKET)).list()).filter((i) => !i.deleted).map((i) => i.name);

/** A module as a node fetches it over REST. */
async function fetchBlob(digest: string): Promise<Buffer> {
  const res = await fetch(`${t.baseUrl}/blobs/${digest}`, { headers: TEST_AUTH_HEADER });
  expect(res.status).toBe(200);
  return Buffer.from(await res.arrayBuffer());
}

describe('update images over NATS, by upload reference', () => {
  it('imports a 5 MB image; its module is stored whole with the right digest and the upload is gone', async () => {
    const image = await makeImage({ update: update('big'), packages: [sign(big, key)], blobs: big.blobs });
    expect(image.length).toBeGreaterThan(1024 * 1024);
    const reply = await importUpload(image);
    expect(reply).toEqual({ update: update('big'), packages: [{ name: 'big', version: '1.0.0' }] });
    const [digest] = [...big.blobs.keys()];
    const bytes = await fetchBlob(digest!);
    expect(bytes.length).toBe(big.manifest.modules[0]!.size);
    expect(`sha256:${createHash('sha256').update(bytes).digest('hex')}`).toBe(digest);
    expect(await uploads()).toEqual([]);
    // The stored manifest is the signed one from the image.
    const { packages } = await t.rpc('get-packages', { packages: [{ name: 'big', version: '1.0.0' }] }, GetPackagesReply);
    expect(packages[0]!.signature?.keyId).toBe('release');
  });

  const tampered: [string, string, () => Promise<Buffer>][] = [
    ['a blob whose bytes do not hash to its name', 'DIGEST_MISMATCH', () => makeImage({ update: update('small'), packages: [sign(small, key)], blobs: new Map([[[...small.blobs.keys()][0]!, Buffer.from('tampered module')]]) })],
    ['a package signed by a key the registry does not trust', 'SIGNATURE_INVALID', () => makeImage({ update: update('small'), packages: [sign(small, rogue)], blobs: small.blobs })],
    ['a truncated gzip stream', 'VALIDATION_FAILED', async () => (await makeImage({ update: update('small'), packages: [sign(small, key)], blobs: small.blobs })).subarray(0, 60)],
    [
      'an entry over the module size limit',
      'TOO_LARGE',
      async () => {
        const huge = buildPackage('huge', '1.0.0', [{ name: 'bin', content: 'x'.repeat(MAX_MODULE + 1) }]);
        return makeImage({ update: update('huge'), packages: [sign(huge, key)], blobs: huge.blobs });
      },
    ],
  ];

  it.each(tampered)('refuses %s with %s, counted, storing nothing and dropping the upload', async (_name, code, make) => {
    const image = await make();
    const before = await storeSnapshot(t);
    const counted = await rejectedCount(code);
    const err = await importUpload(image).then(
      () => null,
      (e: unknown) => e,
    );
    expect(isChangeoverError(err) ? err.code : err).toBe(code);
    expect(await storeSnapshot(t)).toEqual(before);
    expect(await rejectedCount(code)).toBe(counted + 1);
    expect(await uploads()).toEqual([]);
  });

  it('refuses an upload name that is not in the bucket with NOT_FOUND', async () => {
    const err = await t.rpc('import-image', { upload: 'image-never-put' }, ImportImageReply).catch((e: unknown) => e);
    expect(isChangeoverError(err) ? err.code : err).toBe('NOT_FOUND');
  });
});

describe('dropping an upload after its import', () => {
  it('deletes it, and where the delete fails logs that it is left to expire instead of throwing', async () => {
    const name = await putImageUpload(t.nc, Buffer.from('left over'));
    const warned: unknown[] = [];
    await discardImageUpload(t.nc, name, { warn: (o: unknown) => void warned.push(o) });
    expect(await uploads()).not.toContain(name);
    expect(warned).toEqual([]);
    const closed = await connect({ servers: t.nc.getServer() });
    await closed.close();
    await expect(deleteImageUpload(closed, name)).rejects.toBeDefined();
    await expect(discardImageUpload(closed, name, { warn: (o: unknown) => void warned.push(o) })).resolves.toBeUndefined();
    expect(warned).toEqual([expect.objectContaining({ upload: name })]);
  });
});

describe('update images over REST, streamed', () => {
  it('imports a 5 MB image sent as the request body', async () => {
    const big2 = buildPackage('big2', '1.0.0', [{ name: 'payload', content: randomBytes(3_750_000).toString('base64') }]);
    const image = await makeImage({ update: update('big2'), packages: [sign(big2, key)], blobs: big2.blobs });
    const res = await fetch(`${t.baseUrl}/images`, { method: 'POST', headers: { ...TEST_AUTH_HEADER, 'content-type': 'application/gzip' }, body: image });
    expect(res.status).toBe(201);
    const [digest] = [...big2.blobs.keys()];
    expect((await storeSnapshot(t)).blobs).toContain(digest);
    expect(`sha256:${createHash('sha256').update(await fetchBlob(digest!)).digest('hex')}`).toBe(digest);
  });
});
