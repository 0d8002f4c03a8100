import { createHash, generateKeyPairSync } from 'node:crypto';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { z } from 'zod';
import { canonicalJson, signManifest, subjects, type EventData, type HelloReport, type Inventory, type Module, type PackageManifest, type PublishPackageRequest, type Requirements, type SignedPackage } from '@changeover/contracts';
import { requestRpc } from '@changeover/messaging';
import { createTestDatabase, startNats, TEST_ADMIN_TOKEN, type TestDatabase, type TestNats } from '@changeover/test-kit';

/** The Authorization header of the test admin (the registries here are started with it as the bootstrap admin token). */
export { TEST_AUTH_HEADER } from '@changeover/test-kit';
import { loadConfig } from '../config.js';
import { startRegistry, type RunningRegistry } from '../registry.app.js';
import { streams } from '../events/registry.events.js';

// Test helpers: packages with real blobs and signatures, and a registry on a private database and NATS.

export interface PublisherKey {
  keyId: string;
  privateKeyPem: string;
  publicKeyPem: string;
}

export function publisherKey(keyId = 'release'): PublisherKey {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { keyId, privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

export const digestOf = (bytes: Uint8Array) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

/** A node's inventory running `name@version` packages (without modules), digested as an agent does. */
export function inventoryOf(...refs: string[]): Inventory {
  const active = refs.map((ref) => {
    const at = ref.lastIndexOf('@');
    return { name: ref.slice(0, at), version: ref.slice(at + 1), modules: [], requires: {}, provides: [], consumes: [] };
  });
  return { active, previous: [], digest: digestOf(Buffer.from(canonicalJson(active))) };
}

/** An agent's hello: an x86_64 node of class `web` running `inventory`; `over` replaces members. */
export const helloReport = (nodeId: string, inventory: Inventory = inventoryOf(), over: Partial<HelloReport> = {}): HelloReport => ({
  nodeId,
  classId: 'web',
  processorType: 'x86_64',
  characteristics: { arch: 'x86_64', os: 'linux', memoryMb: 4096, labels: {} },
  agentVersion: '1.0.0',
  clusterVersions: { min: 1, max: 2 },
  inventory,
  startedAt: new Date().toISOString(),
  ...over,
});

export interface ModuleSpec {
  name: string;
  processorType?: Module['processorType'];
  content: string;
  requires?: Requirements;
  dependsOn?: string[];
}

export interface BuiltPackage {
  manifest: PackageManifest;
  blobs: Map<string, Buffer>;
}

export function buildPackage(name: string, version: string, modules: ModuleSpec[], extra: Partial<Pick<PackageManifest, 'requires' | 'provides' | 'consumes' | 'description'>> = {}): BuiltPackage {
  const blobs = new Map<string, Buffer>();
  const mods: Module[] = modules.map((m) => {
    const bytes = Buffer.from(m.content);
    const digest = digestOf(bytes);
    blobs.set(digest, bytes);
    return { name: m.name, version, processorType: m.processorType ?? 'any', size: bytes.length, digest, dependsOn: m.dependsOn ?? [], requires: m.requires ?? {} };
  });
  return { manifest: { name, version, description: extra.description ?? '', modules: mods, requires: extra.requires ?? {}, provides: extra.provides ?? [], consumes: extra.consumes ?? [] }, blobs };
}

export const sign = (p: BuiltPackage, key?: PublisherKey): SignedPackage => (key ? signManifest(p.manifest, key.privateKeyPem, key.keyId) : { manifest: p.manifest });

export function publishRequest(pkg: SignedPackage, blobs: Map<string, Buffer>): PublishPackageRequest {
  return { package: pkg, blobs: Object.fromEntries([...blobs].map(([d, b]) => [d, b.toString('base64')])) };
}

export interface TestRegistry {
  registry: RunningRegistry;
  db: TestDatabase;
  nats: TestNats;
  /** A client connection of the test's own. */
  nc: NatsConnection;
  baseUrl: string;
  rpc<S extends z.ZodType>(op: string, body: unknown, schema: S): Promise<z.infer<S>>;
  stop(): Promise<void>;
}

/** A registry on a fresh database and a private nats-server. The sweep is driven by the test (`registry.tick`). */
export async function startTestRegistry(env: Record<string, string> = {}): Promise<TestRegistry> {
  const db = await createTestDatabase('registry');
  const nats = await startNats();
  const config = loadConfig({
    DATABASE_URL: db.url,
    NATS_URL: nats.url,
    REGISTRY_HTTP_PORT: '0',
    REGISTRY_HTTP_HOST: '127.0.0.1',
    REGISTRY_SWEEP_INTERVAL_MS: '3600000',
    REGISTRY_HEARTBEAT_FLUSH_MS: '3600000',
    LOG_LEVEL: process.env['REGISTRY_TEST_LOG_LEVEL'] ?? 'silent',
    CHANGEOVER_ADMIN_TOKEN: TEST_ADMIN_TOKEN,
    ...env,
  });
  const registry = await startRegistry(config);
  const nc = await connect({ servers: nats.url });
  return {
    registry,
    db,
    nats,
    nc,
    baseUrl: `http://127.0.0.1:${registry.httpPort}`,
    rpc: (op, body, schema) => requestRpc(nc, subjects.registry(op), body, schema, { timeoutMs: 10_000 }),
    async stop() {
      await nc.close();
      await registry.close();
      await nats.stop();
      await db.drop();
    },
  };
}

/** Rows in the registry tables and objects in the bucket: asserted unchanged after each rejection. */
export async function storeSnapshot(t: TestRegistry): Promise<{ packages: string[]; blobs: string[]; nodes: string[]; classes: string[] }> {
  const q = async (sql: string) => ((await t.registry.db.query(sql)) as { id: string }[]).map((r) => r.id).sort();
  return {
    packages: await q(`SELECT name || '@' || version || '#' || content_hash AS id FROM registry_packages`),
    blobs: (await t.registry.domain.blobs.list()).sort(),
    nodes: await q(`SELECT node_id AS id FROM registry_nodes`),
    classes: await q(`SELECT class_id AS id FROM registry_classes`),
  };
}

/** The inventory changes the registry's events record for one node, oldest first (from node.inventories-changed). */
export async function inventoryChanges(t: TestRegistry, nodeId: string): Promise<{ inventoryDigest: string; packages: string[] }[]> {
  const out: { inventoryDigest: string; packages: string[] }[] = [];
  for (const e of await t.registry.events.readStream(streams.nodeInventories)) {
    if (e.type !== 'node.inventories-changed') continue;
    const data = e.data as EventData<'node.inventories-changed'>;
    for (const n of data.nodes) if (n.nodeId === nodeId) out.push(data.inventories[n.inventory]!);
  }
  return out;
}
