import { afterAll, describe, expect, it } from '@jest/globals';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { emptyState, type NodeState, type StoredPackage } from '../model/state.js';
import { CounterRegistry } from '../metrics.js';
import { writeRecord } from '../runtime/adoption.js';
import { digestOf, manifestOf, moduleOf } from '../testing/packages.js';
import { FsStore } from './fs-store.js';
import { ModuleGc } from './module-gc.js';

// The garbage collector on a real store in a temp directory: what it deletes, what it must keep, and
// what a collection interrupted half-way leaves.

const hex = (d: string) => d.replace(/^sha256:/, '');
const SHARED = 'assets shared by every version';

function web(version: string): { pkg: StoredPackage; code: string } {
  const code = `service code ${version} `.repeat(100);
  const m = manifestOf('web', version, [moduleOf('web-svc', version, code), moduleOf('web-assets', '1.0.0', SHARED)]);
  return { pkg: { manifest: m, modules: m.modules }, code };
}

async function storeWith(dir: string, versions: string[]): Promise<{ store: FsStore; state: NodeState; codes: Record<string, string> }> {
  const store = await FsStore.open(dir);
  const codes: Record<string, string> = {};
  const pkgs = versions.map((v) => web(v));
  for (const { pkg, code } of pkgs) {
    codes[pkg.manifest.version] = code;
    await store.putBlob(digestOf(code), new TextEncoder().encode(code));
  }
  await store.putBlob(digestOf(SHARED), new TextEncoder().encode(SHARED));
  const [active, previous, ...kept] = pkgs.map((p) => p.pkg).reverse();
  const state: NodeState = { ...emptyState(), active: [active!], previous: [previous!], kept: kept.reverse() };
  await store.save(state);
  return { store, state, codes };
}

const quietLog = () => {
  const lines: { msg: string; fields?: Record<string, unknown> }[] = [];
  const push = (msg: string, fields?: Record<string, unknown>) => void lines.push({ msg, ...(fields ? { fields } : {}) });
  return { lines, info: push, warn: push, error: push };
};

describe('module garbage collection on disk', () => {
  const root = mkdtempSync(join(tmpdir(), 'agent-gc-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('deletes the files of versions no longer kept and keeps active, previous, shared, running and recorded ones', async () => {
    const dir = join(root, 'a');
    const { store, state, codes } = await storeWith(dir, ['1.0.0', '1.1.0', '1.2.0', '1.3.0', '1.4.0']);
    // 1.0.0 still runs as an adopted process (its record in run/); 1.1.0 is being started by the runtime.
    writeRecord(join(dir, 'run'), { pid: 999_999, processId: 'web-svc@1.0.0', token: 't', module: 'web-svc', digest: digestOf(codes['1.0.0']!) });
    writeFileSync(join(dir, 'modules', 'not-a-blob'), 'left alone');
    const counters = new CounterRegistry();
    const log = quietLog();
    const gc = new ModuleGc({ store, keepVersions: 1, inUse: () => [digestOf(codes['1.1.0']!)], counters, log });

    const kept = gc.retain(state);
    expect(kept.kept).toEqual([]);
    await store.save(kept);
    const swept = await gc.sweep(kept);

    const left = readdirSync(join(dir, 'modules')).sort();
    const expected = ['1.0.0', '1.1.0', '1.3.0', '1.4.0'].map((v) => hex(digestOf(codes[v]!)));
    expect(left).toEqual([...expected, hex(digestOf(SHARED)), 'not-a-blob'].sort());
    expect(swept).toEqual({ files: 1, bytes: Buffer.byteLength(codes['1.2.0']!), failures: 0 });
    expect(counters.get('agent_gc_reclaimed_files_total')).toBe(1);
    expect(counters.get('agent_gc_reclaimed_bytes_total')).toBe(Buffer.byteLength(codes['1.2.0']!));
    expect(counters.get('agent_gc_versions_dropped_total')).toBe(3);
    expect(log.lines.map((l) => l.msg)).toEqual(['older package versions no longer kept on this node', 'module files reclaimed']);
    expect(readdirSync(store.trashDir)).toEqual([]);
    // The saved state lists no version whose files are gone.
    const saved = JSON.parse(readFileSync(store.statePath, 'utf8')).state as NodeState;
    for (const p of [...saved.active, ...saved.previous, ...saved.kept]) for (const m of p.modules) expect(store.hasBlob(m.digest)).toBe(true);

    // Once the process and the start are gone, the next sweep takes their files.
    rmSync(join(dir, 'run', 'web-svc@1.0.0.json'));
    const again = await new ModuleGc({ store, keepVersions: 1, inUse: () => [], counters, log }).sweep(kept);
    expect(again.files).toBe(2);
    expect(readdirSync(join(dir, 'modules')).sort()).toEqual([hex(digestOf(codes['1.3.0']!)), hex(digestOf(codes['1.4.0']!)), hex(digestOf(SHARED)), 'not-a-blob'].sort());
  });

  it('keeps AGENT_KEEP_VERSIONS versions besides the active one', async () => {
    const dir = join(root, 'b');
    const { store, state, codes } = await storeWith(dir, ['1.0.0', '1.1.0', '1.2.0', '1.3.0']);
    const gc = new ModuleGc({ store, keepVersions: 2, inUse: () => [], counters: new CounterRegistry(), log: quietLog() });
    const kept = gc.retain(state);
    expect(kept.kept.map((p) => p.manifest.version)).toEqual(['1.1.0']);
    await store.save(kept);
    expect((await gc.sweep(kept)).files).toBe(1);
    expect(store.hasBlob(digestOf(codes['1.0.0']!))).toBe(false);
    for (const v of ['1.1.0', '1.2.0', '1.3.0']) expect(store.hasBlob(digestOf(codes[v]!))).toBe(true);
  });

  it('after a collection interrupted half-way, the store opens clean and the next sweep finishes the work', async () => {
    const dir = join(root, 'c');
    const { store, state, codes } = await storeWith(dir, ['1.0.0', '1.1.0', '1.2.0', '1.3.0']);
    const gc = new ModuleGc({ store, keepVersions: 1, inUse: () => [], counters: new CounterRegistry(), log: quietLog() });
    // Killed after the state was saved and one file moved to the trash, before anything was deleted.
    const kept = gc.retain(state);
    await store.save(kept);
    mkdirSync(store.trashDir);
    const moved = hex(digestOf(codes['1.0.0']!));
    writeFileSync(join(store.trashDir, `${moved}.dead`), codes['1.0.0']!);
    rmSync(join(dir, 'modules', moved));

    const reopened = await FsStore.open(dir);
    expect(readdirSync(dir)).not.toContain('trash');
    const loaded = await reopened.load();
    expect(loaded.kept).toEqual([]);
    for (const p of [...loaded.active, ...loaded.previous]) for (const m of p.modules) expect(reopened.hasBlob(m.digest)).toBe(true);
    // 1.1.0's file, not yet moved, goes with the next sweep; the versions kept are untouched.
    expect(reopened.hasBlob(digestOf(codes['1.1.0']!))).toBe(true);
    expect((await new ModuleGc({ store: reopened, keepVersions: 1, inUse: () => [], counters: new CounterRegistry(), log: quietLog() }).sweep(loaded)).files).toBe(1);
    expect(reopened.hasBlob(digestOf(codes['1.1.0']!))).toBe(false);
    for (const v of ['1.2.0', '1.3.0']) expect(reopened.hasBlob(digestOf(codes[v]!))).toBe(true);
  });

  it('counts and logs a step it cannot do, deleting nothing', async () => {
    const dir = join(root, 'd');
    const { store, state } = await storeWith(dir, ['1.0.0', '1.1.0', '1.2.0']);
    // A file where the trash directory goes: nothing can be moved aside, so nothing is deleted.
    writeFileSync(store.trashDir, 'in the way');
    const counters = new CounterRegistry();
    const log = quietLog();
    const gc = new ModuleGc({ store, keepVersions: 1, inUse: () => [], counters, log });
    const kept = gc.retain(state);
    await store.save(kept);
    const before = readdirSync(join(dir, 'modules')).sort();
    expect(await gc.sweep(kept)).toEqual({ files: 0, bytes: 0, failures: 1 });
    expect(readdirSync(join(dir, 'modules')).sort()).toEqual(before);
    expect(counters.get('agent_gc_failures_total', { reason: 'move' })).toBe(1);
    expect(log.lines.some((l) => l.msg === 'module garbage collection step failed')).toBe(true);
  });
});
