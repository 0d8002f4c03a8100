import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { ChangeoverError } from '@changeover/contracts';
import type { ModuleStore } from '../core/ports.js';
import { emptyState, type NodeState } from '../model/state.js';
import { writeAtomic } from './atomic-file.js';

const STATE_VERSION = 1;
const TRASH_DIR = 'trash';

/**
 * The node's local store (design §7): `state.json` (installed packages with version and dependency
 * info, active and previous sets, kept versions, rollout records, the journal) and content-addressed
 * module files under `modules/`. Every write is atomic, so a kill -9 leaves a consistent store; module
 * files nothing uses any more are deleted by the garbage collector (module-gc.ts).
 */
export class FsStore implements ModuleStore {
  private constructor(readonly dir: string) {}

  static async open(dir: string): Promise<FsStore> {
    await mkdir(join(dir, 'modules'), { recursive: true, mode: 0o700 });
    await mkdir(join(dir, 'run'), { recursive: true });
    await mkdir(join(dir, 'logs'), { recursive: true });
    // Temp files of writes a crash interrupted are garbage: their target still holds the last good content.
    for (const sub of ['', 'modules']) {
      for (const f of await readdir(join(dir, sub))) if (f.endsWith('.tmp')) await rm(join(dir, sub, f), { force: true });
    }
    // Module files a garbage collection moved aside and did not get to delete (it was interrupted): nothing references them.
    await rm(join(dir, TRASH_DIR), { recursive: true, force: true });
    return new FsStore(dir);
  }

  get modulesDir(): string {
    return join(this.dir, 'modules');
  }

  /** Where the garbage collector moves module files before deleting them (on the same file system, so the move is one rename). */
  get trashDir(): string {
    return join(this.dir, TRASH_DIR);
  }

  get statePath(): string {
    return join(this.dir, 'state.json');
  }

  async load(): Promise<NodeState> {
    if (!existsSync(this.statePath)) return emptyState();
    const doc = JSON.parse(await readFile(this.statePath, 'utf8')) as { version: number; state: NodeState };
    if (doc.version !== STATE_VERSION) throw new ChangeoverError('INVALID_STATE', `state.json has version ${doc.version}, this agent reads ${STATE_VERSION}`);
    return { ...emptyState(), ...doc.state };
  }

  async save(state: NodeState): Promise<void> {
    await writeAtomic(this.statePath, JSON.stringify({ version: STATE_VERSION, state }));
  }

  blobPath(digest: string): string {
    return join(this.modulesDir, digest.replace(/^sha256:/, ''));
  }

  hasBlob(digest: string): boolean {
    return existsSync(this.blobPath(digest));
  }

  /** Stores a blob after checking its digest; a mismatch stores nothing. */
  async putBlob(digest: string, bytes: Uint8Array): Promise<void> {
    const actual = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    if (actual !== digest) throw new ChangeoverError('DIGEST_MISMATCH', `module content has digest ${actual}, expected ${digest}`, { expected: digest, actual });
    await writeAtomic(this.blobPath(digest), bytes);
  }

  async freeBytes(): Promise<number> {
    const s = await statfs(this.dir);
    return s.bavail * s.bsize;
  }
}
