import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from '@jest/globals';
import { waitFor } from '@changeover/test-kit';
import type { RunSpec } from '@changeover/contracts';
import { CounterRegistry } from '../metrics.js';
import { LocalApiServer } from '../local-api/local-api-server.js';
import type { StoredPackage } from '../model/state.js';
import { FsStore } from '../store/fs-store.js';
import { digestOf, manifestOf, moduleOf } from '../testing/packages.js';
import { ChildProcessRuntime } from './child-runtime.js';
import { ProcessLogs } from './process-logs.js';
import { RotatingLog } from './rotating-log.js';

// Log rotation with real files and real processes writing through their pipes, including one that
// outlives the agent run that started it (an agent upgrade) and is adopted by the next one.

const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };

/** The log and its rotated files, oldest first. */
function logFiles(path: string): string[] {
  const dir = join(path, '..');
  const base = path.slice(dir.length + 1);
  const rotated = readdirSync(dir)
    .filter((f) => f.startsWith(`${base}.`) && /^\d+$/.test(f.slice(base.length + 1)))
    .sort((a, b) => Number(b.slice(base.length + 1)) - Number(a.slice(base.length + 1)));
  return [...rotated.map((f) => join(dir, f)), ...(existsSync(path) ? [path] : [])];
}

/** The numbers of the `line <n> …` lines across a log and its rotated files, in order. */
function lineNumbers(path: string): number[] {
  const text = logFiles(path).map((f) => readFileSync(f, 'utf8')).join('');
  return text
    .split('\n')
    .filter((l) => l.startsWith('line '))
    .map((l) => Number(l.split(' ')[1]));
}

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

// Prints `line <i> …` lines, 20 every 5 ms, to stdout and stderr by turns, until STOP_FILE exists or LINES are out; then `done`.
const WRITER = `
const fs = require('node:fs');
const max = Number(process.env.LINES);
let i = 0;
function batch() {
  for (let k = 0; k < 20 && i < max; k++, i++) (i % 2 ? process.stderr : process.stdout).write('line ' + i + ' ' + 'x'.repeat(i % 50) + '\\n');
  if (i >= max || (process.env.STOP_FILE && fs.existsSync(process.env.STOP_FILE))) {
    process.stdout.write('done\\n');
    setInterval(() => undefined, 1000);
    return;
  }
  setTimeout(batch, Number(process.env.PACE_MS ?? 5));
}
batch();
`;

describe('rotating log file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'agent-logs-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('cuts after whole lines, keeps at most `keep` rotated files and loses nothing it keeps', () => {
    const path = join(dir, 'svc.log');
    let rotations = 0;
    const log = new RotatingLog(path, { maxBytes: 1000, keep: 3, onRotate: () => rotations++ });
    const lines = range(0, 400).map((i) => `line ${i} ${'y'.repeat(i % 40)}\n`);
    // Chunks that split lines anywhere, as pipe reads do.
    const all = Buffer.from(lines.join(''));
    for (let off = 0, n = 1; off < all.length; off += n, n = ((n * 7 + 3) % 173) + 1) log.write(all.subarray(off, off + n));
    log.close();
    const files = logFiles(path);
    expect(files).toHaveLength(4);
    expect(rotations).toBeGreaterThanOrEqual(10);
    // Every file ends after a whole line: a file passes the limit only to finish a line, by a quarter of it at most.
    for (const f of files) {
      const text = readFileSync(f, 'utf8');
      expect(text.length).toBeLessThanOrEqual(1250);
      expect(text.endsWith('\n')).toBe(true);
    }
    // What is kept is the newest part of the output, whole lines, in order.
    const kept = lineNumbers(path);
    expect(kept).toEqual(range(400 - kept.length, 400));
    expect(kept.length).toBeGreaterThan(50);
  });

  it('finishes the line in progress past the limit, goes on after an existing file, and cuts only a line longer than allowed', () => {
    const short = join(dir, 'short.log');
    const log0 = new RotatingLog(short, { maxBytes: 40, keep: 2 });
    log0.write(Buffer.from('line 0 0123456789012345678901234'));
    log0.write(Buffer.from('56789\nline 1\n'));
    log0.close();
    expect(logFiles(short).map((f) => readFileSync(f, 'utf8'))).toEqual(['line 0 0123456789012345678901234' + '56789\n', 'line 1\n']);

    const path = join(dir, 'long.log');
    writeFileSync(path, 'line 0 from before\n');
    const log = new RotatingLog(path, { maxBytes: 100, keep: 5 });
    log.write(Buffer.from(`line 1 ${'z'.repeat(250)}\nline 2\n`));
    log.close();
    const text = logFiles(path).map((f) => readFileSync(f, 'utf8')).join('');
    expect(text).toBe(`line 0 from before\nline 1 ${'z'.repeat(250)}\nline 2\n`);
    expect(logFiles(path).every((f) => statSync(f).size <= 100)).toBe(true);
  });
});

describe('process output through its pipe', () => {
  const dir = mkdtempSync(join(tmpdir(), 'agent-pipes-'));
  const pids: number[] = [];
  afterAll(() => {
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    rmSync(dir, { recursive: true, force: true });
  });

  const logsOf = (name: string, maxBytes: number, keep: number, counters = new CounterRegistry()) => {
    mkdirSync(join(dir, name, 'logs'), { recursive: true });
    return { counters, logs: new ProcessLogs({ logsDir: join(dir, name, 'logs'), pipesDir: join(dir, name, 'pipes'), maxBytes, keep, counters, log: quiet }) };
  };

  const run = (logs: ProcessLogs, lines: number) => {
    const out = logs.open('writer');
    const child = spawn(process.execPath, ['-e', WRITER.replace('setInterval(() => undefined, 1000);', '')], { stdio: ['ignore', out.fd, out.fd], env: { PATH: process.env['PATH'], LINES: String(lines), PACE_MS: '0' } });
    pids.push(child.pid!);
    const drained = logs.attach('writer', out.pipe!);
    closeSync(out.fd);
    return { out, drained, exited: new Promise((r) => child.once('exit', r)) };
  };

  it('rotates many times while a process writes, with every line in the files once and in order', async () => {
    const { logs, counters } = logsOf('all', 16 * 1024, 100);
    const { out, drained, exited } = run(logs, 20_000);
    expect(out.pipe).toBeDefined();
    await exited;
    await drained;
    const path = logs.logPath('writer');
    expect(lineNumbers(path)).toEqual(range(0, 20_000));
    expect(counters.get('agent_log_rotations_total')).toBeGreaterThanOrEqual(20);
    expect(logFiles(path).length).toBe(counters.get('agent_log_rotations_total') + 1);
    // The reader removed the pipe once the process was gone.
    expect(existsSync(out.pipe!)).toBe(false);
  });

  it('keeps the file count bounded: the newest lines stay, whole and in order', async () => {
    const { logs, counters } = logsOf('bounded', 8 * 1024, 3);
    const { drained, exited } = run(logs, 20_000);
    await exited;
    await drained;
    const path = logs.logPath('writer');
    expect(logFiles(path)).toHaveLength(4);
    for (const f of logFiles(path)) expect(statSync(f).size).toBeLessThanOrEqual(10 * 1024);
    const kept = lineNumbers(path);
    expect(kept).toEqual(range(20_000 - kept.length, 20_000));
    expect(kept.length).toBeGreaterThan(500);
    expect(counters.get('agent_log_rotations_total')).toBeGreaterThanOrEqual(50);
  });
});

describe('log rotation of a process that outlives the agent run that started it', () => {
  const dir = mkdtempSync(join(tmpdir(), 'agent-adopt-logs-'));
  const stateDir = join(dir, 'state');
  let second: ChildProcessRuntime | undefined;
  let secondApi: LocalApiServer | undefined;
  afterAll(async () => {
    writeFileSync(join(dir, 'stop'), '');
    await second?.stopAll();
    await secondApi?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('goes on rotating after the next agent version adopts it, losing no line written meanwhile', async () => {
    const store = await FsStore.open(stateDir);
    await store.putBlob(digestOf(WRITER), new TextEncoder().encode(WRITER));
    const run: RunSpec = { command: process.execPath, args: ['{module}'], env: { LINES: '200000', STOP_FILE: join(dir, 'stop') }, restartOnChange: false, stopTimeoutMs: 5000 };
    const manifest = manifestOf('writer', '1.0.0', [moduleOf('writer', '1.0.0', WRITER, { run })]);
    const set: StoredPackage[] = [{ manifest, modules: manifest.modules }];
    const logOpts = { maxBytes: 16 * 1024, keep: 100 };
    const logPath = join(stateDir, 'logs', 'writer.log');

    // The first agent run starts the writer, then hands it over as for a self-upgrade.
    const firstCounters = new CounterRegistry();
    const firstApi = new LocalApiServer(join(stateDir, 'agent.sock'), firstCounters, quiet);
    await firstApi.start();
    const first = new ChildProcessRuntime({ store, api: firstApi, log: quiet, counters: firstCounters, logs: logOpts });
    await first.apply(set);
    await waitFor('two rotations by the first agent run', () => firstCounters.get('agent_log_rotations_total') >= 2, { timeoutMs: 60_000 });
    first.handOver();
    await firstApi.stop();
    const linesAtHandover = lineNumbers(logPath).length;
    const record = JSON.parse(readFileSync(join(stateDir, 'run', 'writer@1.0.0.json'), 'utf8')) as { pid: number; logPipe: string };
    expect(existsSync(record.logPipe)).toBe(true);

    // While no agent reads, the writer goes on (the pipe holds its output); then the next run adopts it.
    const written = () => Number(/wchar: (\d+)/.exec(readFileSync(`/proc/${record.pid}/io`, 'utf8'))?.[1] ?? 0);
    const atHandover = written();
    await waitFor('the writer writing 8 KiB more with no agent reading', () => written() >= atHandover + 8192, { timeoutMs: 30_000 });
    const counters = new CounterRegistry();
    secondApi = new LocalApiServer(join(stateDir, 'agent.sock'), counters, quiet);
    await secondApi.start();
    second = new ChildProcessRuntime({ store: await FsStore.open(stateDir), api: secondApi, log: quiet, counters, logs: logOpts });
    await second.apply(set);
    expect(counters.get('agent_processes_adopted_total')).toBe(1);
    await waitFor('two rotations by the second agent run', () => counters.get('agent_log_rotations_total') >= 2, { timeoutMs: 60_000 });
    writeFileSync(join(dir, 'stop'), '');
    await waitFor('the writer done', () => readFileSync(logPath, 'utf8').includes('done\n'), { timeoutMs: 60_000 });

    const all = lineNumbers(logPath);
    expect(all.length).toBeGreaterThan(linesAtHandover);
    expect(all).toEqual(range(0, all.length));
    expect(logFiles(logPath).length).toBe(firstCounters.get('agent_log_rotations_total') + counters.get('agent_log_rotations_total') + 1);
    expect(logFiles(logPath).length).toBeLessThanOrEqual(101);
    // Still the same process, and it stops with the agent; its pipe goes with it.
    expect(JSON.parse(readFileSync(join(stateDir, 'run', 'writer@1.0.0.json'), 'utf8')).pid).toBe(record.pid);
    await second.stopAll();
    second = undefined;
    await waitFor('writer gone', () => !existsSync(`/proc/${record.pid}`) || readFileSync(`/proc/${record.pid}/stat`, 'utf8').includes(') Z'), { timeoutMs: 10_000 });
    expect(readdirSync(join(stateDir, 'pipes'))).toEqual([]);
  });
});
