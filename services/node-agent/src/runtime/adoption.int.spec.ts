import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { waitFor } from '@changeover/test-kit';
import { AdoptedProcess, isOurs, takeRecords, writeRecord } from './adoption.js';

// Records of the processes an agent started, and watching one that is not our child.

describe('process adoption', () => {
  let dir: string;
  const pids: number[] = [];
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'adoption-'));
    mkdirSync(join(dir, 'run'));
  });
  afterEach(() => {
    for (const pid of pids.splice(0)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    rmSync(dir, { recursive: true, force: true });
  });

  const start = (marker: string) => {
    const child = spawn(process.execPath, ['-e', 'setInterval(() => undefined, 1000)'], { env: { PATH: process.env['PATH'] ?? '', CHANGEOVER_STATE_DIR: marker }, stdio: 'ignore', detached: true });
    child.unref();
    pids.push(child.pid!);
    return child.pid!;
  };

  it('reads back whole records and old pid files, removing each file', () => {
    writeRecord(join(dir, 'run'), { pid: 1234, processId: 'svc@1.0.0', token: 't', module: 'svc', digest: 'sha256:ab', healthPort: 4100 });
    writeFileSync(join(dir, 'run', 'old@1.0.0.pid'), '4321');
    writeFileSync(join(dir, 'run', 'broken@1.0.0.json'), '{"pid":');
    const got = takeRecords(join(dir, 'run')).sort((a, b) => a.file.localeCompare(b.file));
    expect(got).toEqual([
      { file: 'old@1.0.0.pid', pid: 4321 },
      { file: 'svc@1.0.0.json', pid: 1234, record: { pid: 1234, processId: 'svc@1.0.0', token: 't', module: 'svc', digest: 'sha256:ab', healthPort: 4100 } },
    ]);
    expect(readdirSync(join(dir, 'run'))).toEqual([]);
  });

  it('knows its own processes by the state-dir marker and sees an adopted one exit', async () => {
    const pid = start(dir);
    const other = start(`${dir}-elsewhere`);
    await waitFor('both processes running', () => isOurs(pid, `CHANGEOVER_STATE_DIR=${dir}`) && isOurs(other, `CHANGEOVER_STATE_DIR=${dir}-elsewhere`));
    expect(isOurs(other, `CHANGEOVER_STATE_DIR=${dir}`)).toBe(false);
    const adopted = new AdoptedProcess(pid, `CHANGEOVER_STATE_DIR=${dir}`);
    const exited = new Promise<void>((resolve) => adopted.once('exit', () => resolve()));
    expect(adopted.kill('SIGTERM')).toBe(true);
    await exited;
    expect(isOurs(pid, `CHANGEOVER_STATE_DIR=${dir}`)).toBe(false);
  });
});
