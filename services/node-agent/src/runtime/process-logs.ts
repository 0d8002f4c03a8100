import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { constants, existsSync, mkdirSync, openSync, readdirSync, rmSync } from 'node:fs';
import { Socket } from 'node:net';
import { join } from 'node:path';
import type { Counters, Log } from '../core/ports.js';
import { RotatingLog } from './rotating-log.js';

export interface ProcessLogsOptions {
  /** `<state dir>/logs`: `<module>.log` and its rotated files. */
  logsDir: string;
  /** `<state dir>/pipes`: one named pipe per running process. */
  pipesDir: string;
  maxBytes: number;
  keep: number;
  counters: Counters;
  log: Log;
}

/** A process's stdout and stderr: give `fd` to spawn (both streams), then close it. */
export interface ProcessOutput {
  fd: number;
  /** The named pipe the process writes to; none when it could not be made (output then goes straight to the file, not rotated). */
  pipe?: string;
}

interface Reader {
  module: string;
  pipe: string;
  socket: Socket;
  drained: Promise<void>;
}

/**
 * Managed processes' output, rotated by size (issue 20). Each process writes to a named pipe of
 * its own in `pipes/` (opened read-write for it, so it never writes to a pipe without a reader);
 * the agent reads the pipe and writes `logs/<module>.log` itself, so it alone decides when the file
 * rotates and no line is lost at a rotation. The pipe is a file: a process that outlives an agent
 * upgrade keeps writing into it (the kernel buffers while no agent reads), and the next version,
 * which finds the pipe's path in the process record, opens it again and goes on rotating. Old and
 * new instances of a module share one log file.
 */
export class ProcessLogs {
  private readonly files = new Map<string, { log: RotatingLog; users: number }>();
  private readonly readers = new Set<Reader>();
  private failing = new Set<string>();

  constructor(private readonly opts: ProcessLogsOptions) {
    mkdirSync(opts.pipesDir, { recursive: true, mode: 0o700 });
  }

  logPath(module: string): string {
    return join(this.opts.logsDir, `${module}.log`);
  }

  /** The output of a process about to start. Call `attach` after spawning, then close `fd`. */
  open(module: string): ProcessOutput {
    const pipe = join(this.opts.pipesDir, `${module}.${randomBytes(6).toString('hex')}`);
    try {
      execFileSync('mkfifo', ['-m', '600', pipe], { stdio: 'ignore' });
      return { fd: openSync(pipe, constants.O_RDWR), pipe };
    } catch (e) {
      rmSync(pipe, { force: true });
      this.opts.counters.inc('agent_log_pipe_failures_total');
      this.opts.log.warn('cannot make the output pipe of a process: its output goes to the log file unrotated', { module, error: e instanceof Error ? e.message : String(e) });
      return { fd: openSync(this.logPath(module), 'a') };
    }
  }

  /** Copies what the process writes into its module's log; `drained` resolves once every writer closed the pipe and all was written. */
  attach(module: string, pipe: string): Promise<void> {
    let fd: number;
    try {
      fd = openSync(pipe, constants.O_RDONLY | constants.O_NONBLOCK);
    } catch (e) {
      this.opts.counters.inc('agent_log_pipe_failures_total');
      this.opts.log.warn('cannot read the output pipe of a process: its output is not logged', { module, pipe, error: e instanceof Error ? e.message : String(e) });
      return Promise.resolve();
    }
    const file = this.file(module);
    const socket = new Socket({ fd, readable: true, writable: false });
    const reader: Reader = { module, pipe, socket, drained: Promise.resolve() };
    reader.drained = new Promise<void>((resolve) => {
      socket.on('data', (chunk: Buffer) => this.write(module, file, chunk));
      socket.once('error', (e) => {
        this.opts.counters.inc('agent_log_write_failures_total');
        this.opts.log.warn('reading the output pipe of a process failed', { module, error: e.message });
      });
      socket.once('close', () => {
        if (this.readers.delete(reader)) {
          // Every writer has closed it: the process (and any child holding it) is gone.
          rmSync(pipe, { force: true });
          this.release(module);
        }
        resolve();
      });
    });
    this.readers.add(reader);
    return reader.drained;
  }

  /**
   * A self-upgrade: what each reader holds is written, the readers close and the pipes stay for the
   * next agent version. Synchronous, so nothing more is read from a pipe between the flush and the close.
   */
  detachAll(): void {
    for (const r of [...this.readers]) {
      this.readers.delete(r);
      r.socket.pause();
      const file = this.files.get(r.module)?.log;
      for (let chunk = r.socket.read() as Buffer | null; chunk !== null; chunk = r.socket.read() as Buffer | null) this.write(r.module, file, chunk);
      r.socket.destroy();
    }
    this.closeFiles();
  }

  /** The agent stops with its processes: readers close and their pipes are removed. */
  closeAll(): void {
    for (const r of [...this.readers]) {
      this.readers.delete(r);
      r.socket.destroy();
      rmSync(r.pipe, { force: true });
    }
    this.closeFiles();
  }

  /** Pipes no reader holds (the processes of an agent that did not hand them over are gone): removed. */
  removeUnattached(): void {
    const held = new Set([...this.readers].map((r) => r.pipe));
    for (const f of readdirSync(this.opts.pipesDir)) {
      const path = join(this.opts.pipesDir, f);
      if (!held.has(path)) rmSync(path, { force: true });
    }
  }

  /** Whether a process record's pipe can still be read (an adopted process keeps writing to it). */
  exists(pipe: string | undefined): pipe is string {
    return pipe !== undefined && pipe.startsWith(this.opts.pipesDir) && existsSync(pipe);
  }

  private file(module: string): RotatingLog | undefined {
    let f = this.files.get(module);
    if (!f) {
      try {
        f = { log: new RotatingLog(this.logPath(module), { maxBytes: this.opts.maxBytes, keep: this.opts.keep, onRotate: () => this.opts.counters.inc('agent_log_rotations_total') }), users: 0 };
      } catch (e) {
        this.writeFailed(module, e);
        return undefined;
      }
      this.files.set(module, f);
    }
    f.users++;
    return f.log;
  }

  private write(module: string, file: RotatingLog | undefined, chunk: Buffer): void {
    const log = file ?? this.files.get(module)?.log;
    if (!log) return this.writeFailed(module, new Error('log file not open'));
    try {
      log.write(chunk);
      this.failing.delete(module);
    } catch (e) {
      this.writeFailed(module, e);
    }
  }

  /** Counted every time, logged once until a write succeeds again (a full disk would log every chunk). */
  private writeFailed(module: string, e: unknown): void {
    this.opts.counters.inc('agent_log_write_failures_total');
    if (this.failing.has(module)) return;
    this.failing.add(module);
    this.opts.log.error('cannot write a process log', { module, error: e instanceof Error ? e.message : String(e) });
  }

  private release(module: string): void {
    const f = this.files.get(module);
    if (!f || --f.users > 0) return;
    f.log.close();
    this.files.delete(module);
  }

  private closeFiles(): void {
    for (const f of this.files.values()) f.log.close();
    this.files.clear();
  }
}

