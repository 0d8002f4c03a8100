import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Counters, DiskHygiene, Log } from '../core/ports.js';
import { packageKey, type NodeState } from '../model/state.js';
import { readRecords } from '../runtime/adoption.js';
import type { FsStore } from './fs-store.js';
import { referencedDigests, retainedState, unreferencedBlobs } from './retention.js';

export interface ModuleGcOptions {
  store: FsStore;
  /** Versions of each package kept besides the active one (AGENT_KEEP_VERSIONS). */
  keepVersions: number;
  /** Digests in use whatever the state says: the processes running and being started, the agent's own module file. */
  inUse: () => Iterable<string>;
  counters: Counters;
  log: Log;
}

export interface SweepResult {
  files: number;
  bytes: number;
  failures: number;
}

/**
 * Deletes the module files of versions the node no longer keeps. `retain` drops the older kept
 * versions (the core saves that state first); `sweep` then moves each blob that neither the saved
 * state, a running or adopted process (its record in run/) nor the agent itself uses into the trash
 * directory with one rename and deletes it there. Blobs are content-addressed, so a file two versions
 * share stays while either is kept. A crash anywhere leaves only unreferenced files behind: in
 * modules/ (deleted by the next sweep) or in the trash (emptied when the store opens).
 */
export class ModuleGc implements DiskHygiene {
  constructor(private readonly opts: ModuleGcOptions) {}

  retain(state: NodeState): NodeState {
    const r = retainedState(state, this.opts.keepVersions);
    if (r.dropped.length) {
      this.opts.counters.inc('agent_gc_versions_dropped_total', {}, r.dropped.length);
      this.opts.log.info('older package versions no longer kept on this node', { dropped: r.dropped.map(packageKey), keepVersions: this.opts.keepVersions });
    }
    return r.state;
  }

  async sweep(state: NodeState): Promise<SweepResult> {
    const { store, counters, log } = this.opts;
    const result: SweepResult = { files: 0, bytes: 0, failures: 0 };
    counters.inc('agent_gc_runs_total');
    const failed = (reason: 'scan' | 'move' | 'remove', file: string | undefined, e: unknown) => {
      result.failures++;
      counters.inc('agent_gc_failures_total', { reason });
      log.warn('module garbage collection step failed', { reason, ...(file ? { file } : {}), error: e instanceof Error ? e.message : String(e) });
    };
    let files: string[];
    try {
      files = await readdir(store.modulesDir);
    } catch (e) {
      failed('scan', undefined, e);
      return result;
    }
    const inUse = referencedDigests(state);
    for (const d of this.opts.inUse()) inUse.add(d);
    for (const r of readRecords(join(store.dir, 'run'))) if (typeof r.digest === 'string') inUse.add(r.digest);
    const remove = unreferencedBlobs(files, inUse);
    if (!remove.length) return result;
    try {
      await mkdir(store.trashDir, { recursive: true, mode: 0o700 });
    } catch (e) {
      failed('move', undefined, e);
      return result;
    }
    const moved: { path: string; bytes: number; file: string }[] = [];
    for (const file of remove) {
      const from = join(store.modulesDir, file);
      const to = join(store.trashDir, `${file}.${randomBytes(4).toString('hex')}`);
      try {
        const { size } = await stat(from);
        await rename(from, to);
        moved.push({ path: to, bytes: size, file });
      } catch (e) {
        failed('move', file, e);
      }
    }
    // The moves are durable before anything is deleted: after a crash modules/ lists only what the state keeps.
    await syncDir(store.modulesDir).catch((e: unknown) => failed('move', undefined, e));
    for (const m of moved) {
      try {
        await rm(m.path, { recursive: true, force: true });
        result.files++;
        result.bytes += m.bytes;
      } catch (e) {
        failed('remove', m.file, e);
      }
    }
    counters.inc('agent_gc_reclaimed_files_total', {}, result.files);
    counters.inc('agent_gc_reclaimed_bytes_total', {}, result.bytes);
    log.info('module files reclaimed', { files: result.files, bytes: result.bytes, failures: result.failures });
    return result;
  }
}

async function syncDir(dir: string): Promise<void> {
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}
