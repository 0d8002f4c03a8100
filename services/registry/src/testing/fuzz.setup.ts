import { canonicalJson, ERROR_CODES, HTTP_STATUS, type HelloReport, type Inventory } from '@changeover/contracts';
import { errorBodyProblem as typedRefusalProblem } from '@changeover/test-kit';
import { makeImage } from './image.fixtures.js';
import { buildPackage, digestOf, publishRequest, sign, type TestRegistry } from './registry.fixtures.js';

// Test helpers shared by the fuzz suites: valid examples to mutate, a seeded registry, and checks of the error shape.

export const fuzzPackage = buildPackage('fz', '1.0.0', [
  { name: 'srv', processorType: 'x86_64', content: 'fz server' },
  { name: 'cfg', content: 'fz config', requires: { labels: { zone: 'a' } } },
]);

export function fuzzInventory(names: string[] = []): Inventory {
  const pkgs = names.map((name) => ({ name, version: '1.0.0', modules: [], requires: {}, provides: [], consumes: [] }));
  return { active: pkgs, previous: [], digest: digestOf(Buffer.from(canonicalJson(pkgs))) };
}

export const enrollment = { nodeId: 'fz-1', classId: 'fz-web', processorType: 'x86_64', characteristics: { arch: 'x86_64', os: 'linux', memoryMb: 2048, labels: { zone: 'a' } } } as const;

export const helloReport = (nodeId: string): HelloReport => ({
  nodeId,
  classId: 'fz-web',
  processorType: 'x86_64',
  characteristics: { arch: 'x86_64', os: 'linux', memoryMb: 2048, labels: { zone: 'a' } },
  agentVersion: '1.0.0',
  clusterVersions: { min: 1, max: 2 },
  inventory: fuzzInventory(['fz']),
  startedAt: new Date(0).toISOString(),
});

export const heartbeatReport = (nodeId: string) => ({ nodeId, classId: 'fz-web', at: new Date(0).toISOString(), agentVersion: '1.0.1', clusterVersions: { min: 1, max: 2 }, inventoryDigest: fuzzInventory().digest, phase: 'idle' });
export const inventoryReport = (nodeId: string) => ({ nodeId, at: new Date(0).toISOString(), inventory: fuzzInventory(['fz']) });

/** A valid update image holding the fuzz package. */
export function fuzzImage(): Promise<Buffer> {
  const update = { description: 'fuzz', targets: [{ classes: ['fz-web'], packages: [{ name: 'fz', version: '1.0.0' }] }] };
  return makeImage({ update, packages: [sign(fuzzPackage)], blobs: fuzzPackage.blobs });
}

/** Stores the fuzz package, node fz-1 and class fz-web, so valid examples find what they name. */
export async function seed(t: TestRegistry): Promise<void> {
  await t.registry.domain.packages.publish(publishRequest(sign(fuzzPackage), fuzzPackage.blobs));
  await t.registry.domain.nodes.enroll(enrollment);
  await t.registry.domain.classes.set({ classId: 'fz-web', packages: [{ name: 'fz', version: '1.0.0' }], description: 'fuzz', by: 'ops' });
}

/** Null when `body` is a well-formed ErrorBody with a known code (and, given a status, the status of that code); else why not. */
export const errorBodyProblem = (body: unknown, status?: number): string | null => typedRefusalProblem(body, { codes: ERROR_CODES, httpStatus: HTTP_STATUS }, status);

export { processFaults } from '@changeover/test-kit';

/** The registry's Prometheus text (GET /metrics). */
export async function scrape(t: TestRegistry): Promise<string> {
  const res = await fetch(`${t.baseUrl}/metrics`);
  return res.text();
}
