import { EventEmitter } from 'node:events';
import { closeSync, existsSync, fsyncSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';

// Module processes outlive an agent upgrade: the agent records each one it starts (pid, credential,
// module digest, private health port) in <state dir>/run/, and the agent version that follows adopts
// the records that still match a live process it would run anyway.

/** What an agent keeps of each process it started, so a later agent run can adopt it. */
export interface ProcessRecord {
  pid: number;
  processId: string;
  token: string;
  module: string;
  digest: string;
  healthPort?: number;
  /** The named pipe its output goes to, read by whichever agent version runs (absent from records of older agents). */
  logPipe?: string;
}

/** Written by an agent handing its processes over to the version that follows (a self-upgrade). */
export const HANDOVER_FILE = 'handover';

export const recordPath = (runDir: string, processId: string) => join(runDir, `${processId}.json`);

/** Writes the record whole or not at all (temp file, fsync, rename, dir fsync), synchronously as the spawn happens. */
export function writeRecord(runDir: string, rec: ProcessRecord): void {
  const path = recordPath(runDir, rec.processId);
  const tmp = `${path}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, JSON.stringify(rec));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  const d = openSync(runDir, 'r');
  try {
    fsyncSync(d);
  } finally {
    closeSync(d);
  }
}

export function removeRecord(runDir: string, processId: string): void {
  rmSync(recordPath(runDir, processId), { force: true });
}

/** Every record and pid file in the run directory (older agents wrote bare `<id>.pid` files); each file is removed as it is read. */
export function takeRecords(runDir: string): { file: string; pid: number; record?: ProcessRecord }[] {
  const out: { file: string; pid: number; record?: ProcessRecord }[] = [];
  for (const f of readdirSync(runDir)) {
    if (f === HANDOVER_FILE || f.endsWith('.tmp')) continue;
    const path = join(runDir, f);
    try {
      const text = readFileSync(path, 'utf8');
      if (f.endsWith('.json')) {
        const record = JSON.parse(text) as ProcessRecord;
        out.push({ file: f, pid: record.pid, record });
      } else {
        out.push({ file: f, pid: Number(text) });
      }
    } catch {
      // unreadable: nothing to adopt or stop
    }
    rmSync(path, { force: true });
  }
  return out;
}

/** The records in the run directory, left in place (the garbage collector keeps the modules they run). */
export function readRecords(runDir: string): ProcessRecord[] {
  const out: ProcessRecord[] = [];
  let files: string[] = [];
  try {
    files = readdirSync(runDir);
  } catch {
    return out;
  }
  for (const f of files) {
    if (!f.endsWith('.json')) continue;
    try {
      out.push(JSON.parse(readFileSync(join(runDir, f), 'utf8')) as ProcessRecord);
    } catch {
      // removed meanwhile, or half of an old agent's write: it names no module
    }
  }
  return out;
}

/** A live process of ours: it exists, is not a zombie, and carries the state-dir marker. */
export function isOurs(pid: number, marker: string): boolean {
  if (!Number.isInteger(pid) || pid <= 1 || !existsSync(`/proc/${pid}`)) return false;
  try {
    if (/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))) return false;
    return readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes(marker);
  } catch {
    return false;
  }
}

/**
 * An adopted process is not our child: no exit event comes from the kernel, so its exit is noticed by
 * watching /proc. It offers what the runtime uses of a ChildProcess: pid, kill and a single 'exit'.
 */
export class AdoptedProcess extends EventEmitter {
  private readonly timer: NodeJS.Timeout;
  exitCode: number | null = null;

  constructor(
    readonly pid: number,
    marker: string,
  ) {
    super();
    this.timer = setInterval(() => {
      if (isOurs(pid, marker)) return;
      clearInterval(this.timer);
      this.exitCode = 0;
      this.emit('exit', null, null);
    }, 100);
    this.timer.unref();
  }

  kill(signal: NodeJS.Signals = 'SIGTERM'): boolean {
    try {
      process.kill(this.pid, signal);
      return true;
    } catch {
      return false;
    }
  }
}
