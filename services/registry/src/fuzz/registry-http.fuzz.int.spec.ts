import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { metricSum, mutatedPayload } from '../testing/fuzz.mutations.js';
import { enrollment, errorBodyProblem, fuzzImage, fuzzPackage, processFaults, scrape, seed } from '../testing/fuzz.setup.js';
import { makeImage } from '../testing/image.fixtures.js';
import { publishRequest, sign, startTestRegistry, TEST_AUTH_HEADER, type TestRegistry } from '../testing/registry.fixtures.js';

// Property-based fuzzing of every REST endpoint of the registry: mutated JSON bodies, raw bytes,
// hostile path segments and query strings. Every answer is 2xx or a typed 4xx ErrorBody whose
// status matches its code; every refusal is counted in /metrics; the API still serves afterwards.
let t: TestRegistry;
let faults: ReturnType<typeof processFaults>;
const RUNS = 50;

beforeAll(async () => {
  faults = processFaults();
  t = await startTestRegistry({ REGISTRY_MAX_IMAGE_BYTES: '1000000', REGISTRY_MAX_MODULE_BYTES: '100000' });
  await seed(t);
});

afterAll(async () => {
  faults?.stop();
  await t?.stop();
});

interface Answer {
  status: number;
  body: unknown;
}

async function call(method: string, path: string, body?: Uint8Array, contentType = 'application/json'): Promise<Answer> {
  const res = await fetch(`${t.baseUrl}${path}`, { method, headers: { ...TEST_AUTH_HEADER, ...(body ? { 'content-type': contentType } : {}) }, ...(body ? { body } : {}) });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // a blob download or a non-JSON answer: checked by status only
  }
  return { status: res.status, body: parsed };
}

const rejectedTotal = async () => metricSum(await scrape(t), 'changeover_registry_requests_rejected_total');

/** Runs `property` RUNS times; each answer must be 2xx or a typed 4xx; the refusals must move the counter exactly. */
async function fuzz<T>(arb: fc.Arbitrary<T>, send: (input: T) => Promise<Answer>, runs = RUNS): Promise<number> {
  const before = await rejectedTotal();
  let refused = 0;
  await fc.assert(
    fc.asyncProperty(arb, async (input) => {
      const { status, body } = await send(input);
      if (status < 400) {
        expect(status).toBeGreaterThanOrEqual(200);
        return;
      }
      refused++;
      expect(status).toBeLessThan(500);
      expect(errorBodyProblem(body, status)).toBeNull();
    }),
    { numRuns: runs },
  );
  expect((await rejectedTotal()) - before).toBe(refused);
  expect(faults.faults).toEqual([]);
  return refused;
}

const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
/** URL-encodes text; a lone surrogate (which UTF-8 cannot carry) goes out as the invalid bytes %ED%A0%80. */
const seg = (s: string) => [...s].map((c) => (/[\ud800-\udfff]/.test(c) ? '%ED%A0%80' : encodeURIComponent(c))).join('');
/** Path segments and query values a client could send, already encoded: valid ones, near misses, hostile text, broken escapes. */
const segment = fc.oneof(
  fc.constantFrom('fz', '1.0.0', 'fz-1', 'fz-web', 'sha256:' + 'a'.repeat(64), '..', '\u0000', '\ud800', 'x'.repeat(5000), '', ' ', '1e308', '-1', 'a=b', 'zone=a').map(seg),
  fc.string({ maxLength: 30 }).map(seg),
  fc.constantFrom('%', '%FF', '%ED%A0%80', '%00', '%2F', '%E0%A4%A', '..%2F..'),
);

describe('registry REST API under fuzzed input', () => {
  const ref = { name: 'fz', version: '1.0.0' };
  const jsonEndpoints: [string, string, unknown[]][] = [
    ['POST', '/packages', [publishRequest(sign(fuzzPackage), fuzzPackage.blobs), publishRequest(sign(fuzzPackage), new Map())]],
    ['POST', '/packages/get', [{ packages: [ref] }]],
    ['POST', '/select-modules', [{ packages: [ref], nodes: ['fz-1'], classes: ['fz-web'] }]],
    ['POST', '/nodes', [enrollment]],
    ['PUT', '/classes/fz-web', [{ packages: [ref], description: 'fuzz', by: 'ops' }]],
  ];

  for (const [method, path, valid] of jsonEndpoints) {
    it(`${method} ${path}: mutated JSON bodies get 2xx or a typed, counted 4xx, and a valid body still works`, async () => {
      const contentType = fc.constantFrom('application/json', 'application/json', 'application/json', 'text/plain', 'application/octet-stream');
      expect(await fuzz(fc.tuple(mutatedPayload(valid), contentType), ([body, type]) => call(method, path, body, type))).toBeGreaterThan(0);
      expect((await call(method, path, enc(valid[0]))).status).toBeLessThan(300);
    });
  }

  it('GET endpoints: hostile path segments and query strings get 2xx or a typed, counted 4xx', async () => {
    const get = fc.oneof(
      fc.tuple(segment, segment).map(([n, v]) => `/packages/${n}/${v}`),
      segment.map((d) => `/blobs/${d}`),
      segment.map((n) => `/nodes/${n}`),
      segment.map((n) => `/nodes/${n}/inventory`),
      segment.map((c) => `/classes/${c}`),
      fc.tuple(segment, segment).map(([n, l]) => `/packages?name=${n}&limit=${l}`),
      fc.tuple(segment, segment, segment, segment).map(([c, s, l, a]) => `/nodes?classId=${c}&status=${s}&label=${l}&limit=${a}&after=${c}`),
    );
    expect(await fuzz(get, (path) => call('GET', path), 100)).toBeGreaterThan(0);
    expect((await call('GET', '/packages/fz/1.0.0')).status).toBe(200);
    expect((await call('GET', '/nodes?classId=fz-web')).status).toBe(200);
  });

  it('PUT /blobs/:digest: random bytes under random digests are refused typed and store nothing they do not hash to', async () => {
    const before = new Set(await t.registry.domain.blobs.list());
    const upload = fc.tuple(fc.oneof(segment, fc.constant(seg('sha256:' + 'b'.repeat(64)))), fc.uint8Array({ maxLength: 2000 }));
    expect(await fuzz(upload, ([digest, bytes]) => call('PUT', `/blobs/${digest}`, bytes, 'application/octet-stream'))).toBeGreaterThan(0);
    expect(new Set(await t.registry.domain.blobs.list())).toEqual(before);
  });

  it('POST /images: mutated update.json, mutated package files and damaged archives are refused typed and counted', async () => {
    const good = await fuzzImage();
    const update = { update: { description: 'fuzz', targets: [{ classes: ['fz-web'], packages: [ref] }] }, packages: ['packages/fz@1.0.0.json'], blobs: Object.fromEntries([...fuzzPackage.blobs.keys()].map((d) => [d, `blobs/${d.slice(7)}`])) };
    const image = fc.oneof(
      mutatedPayload([update]).map((bytes) => ({ file: 'update.json', bytes })),
      mutatedPayload([sign(fuzzPackage)]).map((bytes) => ({ file: 'packages/fz@1.0.0.json', bytes })),
      fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })).map(([at, b]) => ({ flip: [at % good.length, b] as const })),
      fc.nat().map((n) => ({ cut: n % good.length })),
    );
    const send = async (m: { file: string; bytes: Uint8Array } | { flip: readonly [number, number] } | { cut: number }) => {
      let body: Buffer;
      if ('file' in m) body = await makeImage({ update: update.update, packages: [sign(fuzzPackage)], blobs: fuzzPackage.blobs, replace: { [m.file]: Buffer.from(m.bytes) } });
      else if ('flip' in m) (body = Buffer.from(good))[m.flip[0]] = m.flip[1];
      else body = good.subarray(0, m.cut);
      return call('POST', '/images', body, 'application/gzip');
    };
    expect(await fuzz(image, send, 40)).toBeGreaterThan(0);
    expect((await call('POST', '/images', good, 'application/gzip')).status).toBe(201);
  });
});
