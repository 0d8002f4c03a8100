import { afterAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { emptyState } from '../model/state.js';
import { digestOf, manifestOf, moduleOf } from '../testing/packages.js';
import { FsStore } from './fs-store.js';

describe('file-system store', () => {
  const dir = mkdtempSync(join(tmpdir(), 'agent-store-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('saves and loads the state atomically and removes temp files an interrupted write left', async () => {
    const store = await FsStore.open(dir);
    const m = manifestOf('a', '1.0.0', [moduleOf('a', '1.0.0', 'x')]);
    await store.save({ ...emptyState(), active: [{ manifest: m, modules: m.modules }] });
    writeFileSync(join(dir, '.state.json.123.dead.tmp'), '{"half":');
    const reopened = await FsStore.open(dir);
    expect((await reopened.load()).active[0]!.manifest.name).toBe('a');
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('stores a blob only when its digest matches', async () => {
    const store = await FsStore.open(dir);
    const bytes = new TextEncoder().encode('module bytes');
    await store.putBlob(digestOf(bytes), bytes);
    expect(store.hasBlob(digestOf(bytes))).toBe(true);
    await expect(store.putBlob(digestOf('other'), bytes)).rejects.toMatchObject({ code: 'DIGEST_MISMATCH' });
    expect(store.hasBlob(digestOf('other'))).toBe(false);
    expect(await store.freeBytes()).toBeGreaterThan(0);
  });
});
