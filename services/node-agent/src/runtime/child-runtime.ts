import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AGENT_ENV } from '@changeover/agent-sdk';
import { VETO_REASONS, type Module, type RunSpec, type VetoReason } from '@changeover/contracts';
import type { RunningProcess } from '../affected/affected-processes.js';
import type { Counters, EvaluateVerdict, EventPayload, Log, PrepareResult, ProcessRuntime } from '../core/ports.js';
import type { LocalApiServer } from '../local-api/local-api-server.js';
import type { StoredPackage } from '../model/state.js';
import type { FsStore } from '../store/fs-store.js';
import { AdoptedProcess, HANDOVER_FILE, isOurs, removeRecord, takeRecords, writeRecord, type ProcessRecord } from './adoption.js';
import { commandProbe, probe } from './health-check.js';
import { bindSocket, SocketTable, type BoundSocket } from './listen-sockets.js';
import { ProcessLogs } from './process-logs.js';

interface Runnable {
  module: Module & { run: RunSpec };
  packages: string[];
}

interface Proc extends Runnable {
  processId: string;
  /** The credential this process speaks to the local API with (in its environment). */
  token: string;
  child: ChildProcess | AdoptedProcess;
  exited: Promise<void>;
  exitInfo?: string;
  stopping: boolean;
  health?: BoundSocket;
  logPath: string;
  /** The named pipe its stdout and stderr go to (read by the agent into logPath). */
  logPipe?: string;
  /** Resolves once its output has all been written to the log (every writer closed the pipe). */
  logDrained: Promise<void>;
}

export interface ChildRuntimeOptions {
  store: FsStore;
  api: LocalApiServer;
  log: Log;
  counters: Counters;
  /** Size rotation of the processes' log files (AGENT_LOG_MAX_BYTES, AGENT_LOG_KEEP). */
  logs?: { maxBytes: number; keep: number };
}

const STATE_MARKER = 'CHANGEOVER_STATE_DIR';
/** How long a module's port may still be held by something else (a killed agent's dying process) before starting fails. */
const BIND_RETRY_MS = 10_000;

/** A failed evaluate hook vetoes; output that starts with a known reason (`PROCESS_BUSY: …`) keeps it. */
export function hookVeto(output: string): EvaluateVerdict {
  const m = /^([A-Z_]+)\s*:\s*/.exec(output);
  const reason = m && (VETO_REASONS as readonly string[]).includes(m[1]!) ? (m[1] as VetoReason) : 'CUSTOM';
  return { decision: 'veto', reason, message: (reason === 'CUSTOM' ? output : output.slice(m![0].length)) || 'evaluate hook failed' };
}

/** Runnable modules of a set, one per module name (a module shared by two packages runs once). */
export function runnables(set: StoredPackage[]): Map<string, Runnable> {
  const out = new Map<string, Runnable>();
  for (const p of set) {
    for (const m of p.modules) {
      if (!m.run) continue;
      const seen = out.get(m.name);
      if (seen) seen.packages.push(p.manifest.name);
      else out.set(m.name, { module: m as Runnable['module'], packages: [p.manifest.name] });
    }
  }
  return out;
}

/**
 * The real process runtime: modules with a run spec are supervised child processes; TCP services
 * get their listening socket from the agent (fd 3), so old and new versions serve side by side.
 */
export class ChildProcessRuntime implements ProcessRuntime {
  private readonly live = new Map<string, Proc>();
  private candidates: Proc[] = [];
  private readonly sockets = new SocketTable();
  private orphansChecked = false;
  private stopped = false;
  private readonly logs: ProcessLogs;

  constructor(private readonly opts: ChildRuntimeOptions) {
    this.logs = new ProcessLogs({
      logsDir: join(opts.store.dir, 'logs'),
      pipesDir: join(opts.store.dir, 'pipes'),
      maxBytes: opts.logs?.maxBytes ?? 10 * 1024 * 1024,
      keep: opts.logs?.keep ?? 5,
      counters: opts.counters,
      log: opts.log,
    });
  }

  running(): RunningProcess[] {
    return [...this.live.values()].map((p) => ({ processId: p.processId, module: p.module.name, packages: p.packages }));
  }

  /** Module digests of every process running or being started (the garbage collector keeps their files). */
  digestsInUse(): string[] {
    return [...this.live.values(), ...this.candidates].map((p) => p.module.digest);
  }

  private find(processId: string): Proc | undefined {
    return [...this.live.values()].find((p) => p.processId === processId);
  }

  private hookEnv(p: Proc, event: EventPayload): NodeJS.ProcessEnv {
    return { PATH: process.env['PATH'], HOME: process.env['HOME'], ...p.module.run.env, CHANGEOVER_EVENT: JSON.stringify(event), [AGENT_ENV.processId]: p.processId };
  }

  private argv(p: Runnable, argv: string[]): string[] {
    const path = this.opts.store.blobPath(p.module.digest);
    return argv.map((a) => a.replaceAll('{module}', path));
  }

  async evaluate(processId: string, event: Extract<EventPayload, { kind: 'evaluate' }>): Promise<EvaluateVerdict> {
    const p = this.find(processId);
    if (this.opts.api.handles(processId, 'evaluate')) {
      const a = await this.opts.api.ask(processId, event);
      if ('decision' in a) return a;
      return { decision: 'veto', reason: 'CUSTOM', message: 'answered evaluate with something else than a verdict' };
    }
    const hook = p?.module.run.hooks?.evaluate;
    if (p && hook) {
      const r = await commandProbe(this.argv(p, hook), event.deadlineMs, this.hookEnv(p, event));
      return r.ok ? { decision: 'accept' } : hookVeto(r.output);
    }
    return { decision: 'accept' };
  }

  async prepare(processId: string, event: Extract<EventPayload, { kind: 'prepare' }>): Promise<PrepareResult> {
    const p = this.find(processId);
    if (this.opts.api.handles(processId, 'prepare')) {
      const a = await this.opts.api.ask(processId, event);
      if ('ready' in a) return a.ready ? { ready: true } : { ready: false, message: a.message || 'not ready' };
      return { ready: false, message: 'answered prepare with something else than readiness' };
    }
    const hook = p?.module.run.hooks?.prepare;
    if (p && hook) {
      const r = await commandProbe(this.argv(p, hook), event.deadlineMs, this.hookEnv(p, event));
      return r.ok ? { ready: true } : { ready: false, message: r.output || 'prepare hook failed' };
    }
    return { ready: true };
  }

  async notifyChanged(processId: string, event: Extract<EventPayload, { kind: 'changed' }>): Promise<void> {
    const p = this.find(processId);
    if (this.opts.api.handles(processId, 'changed')) {
      await this.opts.api.ask(processId, event);
      return;
    }
    const hook = p?.module.run.hooks?.changed;
    if (p && hook) await commandProbe(this.argv(p, hook), 30_000, this.hookEnv(p, event));
  }

  async startCandidates(target: StoredPackage[], deadlineMs: number): Promise<{ ok: true } | { ok: false; output: string }> {
    const deadlineAt = Date.now() + deadlineMs;
    const toStart = [...runnables(target).values()].filter((r) => this.live.get(r.module.name)?.module.digest !== r.module.digest);
    try {
      await this.bindListenSockets(toStart, Math.min(deadlineAt, Date.now() + BIND_RETRY_MS));
    } catch (e) {
      return { ok: false, output: e instanceof Error ? e.message : String(e) };
    }
    this.candidates = toStart.map((r) => this.spawn(r));
    const results = await Promise.all(this.candidates.map(async (p) => ({ p, r: await this.waitHealthy(p, deadlineAt) })));
    const failed = results.filter((x) => !x.r.ok);
    if (!failed.length) return { ok: true };
    return { ok: false, output: failed.map((x) => `${x.p.processId}: ${x.r.output}`).join('\n').slice(0, 4000) };
  }

  async switchOver(target: StoredPackage[]): Promise<void> {
    const desired = runnables(target);
    const stopping: Promise<void>[] = [];
    for (const cand of this.candidates) {
      const old = this.live.get(cand.module.name);
      this.live.set(cand.module.name, cand);
      if (old) stopping.push(this.stop(old));
    }
    this.candidates = [];
    for (const [name, p] of this.live) {
      if (!desired.has(name)) {
        this.live.delete(name);
        stopping.push(this.stop(p));
      }
    }
    await Promise.all(stopping);
  }

  async discardCandidates(): Promise<void> {
    const c = this.candidates;
    this.candidates = [];
    await Promise.all(c.map((p) => this.stop(p)));
  }

  /**
   * A second instance starts beside the old one on the same shared socket and must pass its health
   * check before the old one is stopped; an unhealthy one is stopped and the old one keeps serving.
   */
  async restart(processIds: string[], deadlineMs: number): Promise<{ ok: true } | { ok: false; output: string }> {
    const deadlineAt = Date.now() + deadlineMs;
    const failed: string[] = [];
    for (const id of processIds) {
      const old = this.find(id);
      if (!old) continue;
      let next: Proc;
      try {
        next = this.spawn(old);
      } catch (e) {
        this.opts.counters.inc('agent_process_start_failures_total');
        failed.push(`${id}: cannot start: ${e instanceof Error ? e.message : String(e)}`);
        continue;
      }
      const r = await this.waitHealthy(next, deadlineAt);
      if (!r.ok) {
        await this.stop(next);
        failed.push(`${id}: ${r.output}`);
        continue;
      }
      this.live.set(old.module.name, next);
      await this.stop(old);
    }
    return failed.length ? { ok: false, output: failed.join('\n').slice(0, 4000) } : { ok: true };
  }

  async apply(set: StoredPackage[]): Promise<void> {
    const desired = runnables(set);
    const adopted: Proc[] = [];
    if (!this.orphansChecked) {
      this.orphansChecked = true;
      adopted.push(...(await this.adoptOrStop(desired)));
    }
    for (const [name, p] of this.live) {
      if (desired.get(name)?.module.digest !== p.module.digest) {
        this.live.delete(name);
        await this.stop(p);
      }
    }
    const toStart = [...desired.values()].filter((r) => !this.live.has(r.module.name));
    await this.bindListenSockets(toStart, Date.now() + BIND_RETRY_MS).catch((e: unknown) => {
      // Started anyway below: spawn fails again on the socket and says so; the rest of the set runs.
      this.opts.log.error('cannot bind a module socket', { error: e instanceof Error ? e.message : String(e) });
    });
    const started: Proc[] = [...adopted];
    for (const r of toStart) {
      let p: Proc;
      try {
        p = this.spawn(r);
      } catch (e) {
        this.opts.counters.inc('agent_process_start_failures_total');
        this.opts.log.error('cannot start process', { module: r.module.name, error: e instanceof Error ? e.message : String(e) });
        continue;
      }
      this.live.set(r.module.name, p);
      started.push(p);
    }
    for (const p of started) {
      const r = await this.waitHealthy(p, Date.now() + 30_000);
      if (!r.ok) this.opts.log.warn('process started but not healthy', { processId: p.processId, output: r.output });
    }
  }

  /**
   * A self-upgrade: the processes keep running for the next agent version to adopt. Supervision
   * stops, the run records stay, and the listening sockets are returned for the launcher to pass on.
   */
  handOver(): BoundSocket[] {
    this.stopped = true;
    writeFileSync(join(this.runDir, HANDOVER_FILE), String(process.pid));
    for (const p of [...this.live.values(), ...this.candidates]) p.health?.close();
    // The processes keep writing into their pipes; the next version reads them from where this one stopped.
    this.logs.detachAll();
    return this.sockets.all();
  }

  /** Listening sockets the previous agent version handed over (through the launcher). */
  adoptSockets(sockets: { host: string; port: number; handle: { fd: number; close(): void } }[]): void {
    for (const s of sockets) this.sockets.adopt(s.host, s.port, s.handle);
  }

  private get runDir(): string {
    return join(this.opts.store.dir, 'run');
  }

  async stopAll(): Promise<void> {
    this.stopped = true;
    const procs = [...this.live.values(), ...this.candidates];
    await Promise.all(procs.map((p) => this.stop(p)));
    // Their last lines are written before the agent goes (bounded: a child of a module may still hold its pipe).
    await drainedOrTimeout(procs, 2000);
    this.logs.closeAll();
    this.live.clear();
    this.candidates = [];
    this.sockets.closeAll();
  }

  /** Binds the shared listening sockets of these modules first, waiting while a port is still held. */
  private async bindListenSockets(toStart: Runnable[], deadlineAt: number): Promise<void> {
    for (const r of toStart) {
      const listen = r.module.run.listen;
      if (listen) await this.sockets.acquire(listen.host, listen.port, deadlineAt);
    }
  }

  // ── processes ──

  private spawn(r: Runnable): Proc {
    const run = r.module.run;
    const processId = `${r.module.name}@${r.module.version}`;
    const logPath = this.logs.logPath(r.module.name);
    const out = this.logs.open(r.module.name);
    const fds: number[] = [];
    // A restart's second instance shares the process id, so it shares the credential: the first keeps talking to the local API meanwhile.
    const sibling = this.find(processId);
    const token = sibling ? sibling.token : this.opts.api.issueCredential(processId);
    const env: NodeJS.ProcessEnv = {
      PATH: process.env['PATH'],
      HOME: process.env['HOME'],
      ...run.env,
      [AGENT_ENV.socket]: this.opts.api.socketPath,
      [AGENT_ENV.processId]: processId,
      [AGENT_ENV.token]: token,
      [STATE_MARKER]: this.opts.store.dir,
    };
    let health: BoundSocket | undefined;
    if (run.listen) {
      fds.push(this.sockets.get(run.listen.host, run.listen.port).fd);
      // A private health socket (fd 4): a probe of the shared port could reach the old process.
      if (run.healthCheck && run.healthCheck.type !== 'command' && run.healthCheck.port === undefined) {
        health = bindSocket(run.listen.host, 0);
        fds.push(health.fd);
      }
      env['LISTEN_FDS'] = String(fds.length);
      env['LISTEN_FDNAMES'] = health ? 'service:health' : 'service';
    }
    const [command, ...args] = this.argv(r, [run.command, ...run.args]);
    // Its own process group: a signal to the agent's group (a terminal, a launcher stop) does not reach it, so it can outlive an agent upgrade.
    let child: ChildProcess;
    try {
      child = spawn(command!, args, { stdio: ['ignore', out.fd, out.fd, ...fds], env, cwd: this.opts.store.dir, detached: true });
    } catch (e) {
      closeSync(out.fd);
      if (out.pipe) rmSync(out.pipe, { force: true });
      throw e;
    }
    // Read before the agent's end closes: the process holds the pipe open from now on.
    const logDrained = out.pipe ? this.logs.attach(r.module.name, out.pipe) : Promise.resolve();
    closeSync(out.fd);
    const proc: Proc = { ...r, processId, token, child, stopping: false, health, logPath, ...(out.pipe ? { logPipe: out.pipe } : {}), logDrained, exited: Promise.resolve() };
    proc.exited = new Promise<void>((resolve) => {
      child.once('exit', (code, signal) => {
        proc.exitInfo = signal ? `killed by ${signal}` : `exited with code ${code}`;
        this.exited(proc);
        resolve();
      });
      child.once('error', (e) => {
        proc.exitInfo = `could not start: ${e.message}`;
        this.exited(proc);
        resolve();
      });
    });
    if (child.pid) writeRecord(this.runDir, recordOf(proc, child.pid));
    this.opts.counters.inc('agent_processes_started_total');
    this.opts.log.info('process started', { processId, pid: child.pid });
    return proc;
  }

  private exited(p: Proc): void {
    p.health?.close();
    // A restart runs two instances under one process id (and one credential) for a moment: the one that stays keeps the record and the registration.
    const other = this.find(p.processId);
    if (other && other !== p) {
      if (other.child.pid) writeRecord(this.runDir, recordOf(other, other.child.pid));
    } else {
      if (!this.stopped || p.stopping) removeRecord(this.runDir, p.processId);
      this.opts.api.forget(p.processId);
      this.opts.api.revokeCredential(p.processId, p.token);
    }
    if (p.stopping || this.stopped) return;
    // Supervision: a live process that dies is started again.
    this.opts.counters.inc('agent_process_crashes_total');
    this.opts.log.warn('process exited unexpectedly', { processId: p.processId, exit: p.exitInfo });
    if (this.live.get(p.module.name) === p) {
      setTimeout(() => {
        if (this.stopped || this.live.get(p.module.name) !== p) return;
        try {
          this.live.set(p.module.name, this.spawn(p));
        } catch (e) {
          this.opts.counters.inc('agent_process_start_failures_total');
          this.opts.log.error('cannot restart process', { processId: p.processId, error: e instanceof Error ? e.message : String(e) });
        }
      }, 1000).unref();
    }
  }

  private async stop(p: Proc): Promise<void> {
    p.stopping = true;
    if (p.exitInfo !== undefined) return;
    p.child.kill('SIGTERM');
    const timer = setTimeout(() => p.child.kill('SIGKILL'), p.module.run.stopTimeoutMs);
    await p.exited;
    clearTimeout(timer);
  }

  private async waitHealthy(p: Proc, deadlineAt: number): Promise<{ ok: boolean; output: string }> {
    const check = p.module.run.healthCheck;
    const host = p.module.run.listen?.host ?? '127.0.0.1';
    let last = 'no probe yet';
    for (;;) {
      if (p.exitInfo !== undefined) {
        await drainedOrTimeout([p], 1000);
        return { ok: false, output: `${p.exitInfo}\n${this.logTail(p)}` };
      }
      if (!check) return { ok: true, output: '' };
      if (check.type !== 'command' && check.port === undefined && !p.health) return { ok: false, output: `${check.type} health check names no port and the module listens on none` };
      const r = await probe(check, host, p.health?.port, { PATH: process.env['PATH'], ...p.module.run.env });
      if (r.ok) return r;
      last = r.output;
      if (Date.now() >= deadlineAt) return { ok: false, output: `health check failed: ${last}\n${this.logTail(p)}` };
      await new Promise((res) => setTimeout(res, 100));
    }
  }

  private logTail(p: Proc): string {
    try {
      const text = readFileSync(p.logPath, 'utf8');
      return text.slice(-1500);
    } catch {
      return '';
    }
  }

  /**
   * Processes an earlier agent run left: after a handover (self-upgrade) the ones running a module
   * of the set, at the same digest, are adopted (credential, health port, exit watch); any other is
   * killed, since it holds sockets the set needs (a crashed agent's processes).
   */
  private async adoptOrStop(desired: Map<string, Runnable>): Promise<Proc[]> {
    const marker = `${STATE_MARKER}=${this.opts.store.dir}`;
    const handover = existsSync(join(this.runDir, HANDOVER_FILE));
    rmSync(join(this.runDir, HANDOVER_FILE), { force: true });
    const adopted: Proc[] = [];
    for (const { file, pid, record } of takeRecords(this.runDir)) {
      if (!isOurs(pid, marker)) continue;
      const want = record ? desired.get(record.module) : undefined;
      if (handover && record && want && want.module.digest === record.digest && `${want.module.name}@${want.module.version}` === record.processId && !this.live.has(want.module.name)) {
        const host = want.module.run.listen?.host ?? '127.0.0.1';
        const child = new AdoptedProcess(pid, marker);
        // Its output pipe, read again from where the previous version stopped; a process an older agent started writes to the file itself (not rotated).
        const logPipe = this.logs.exists(record.logPipe) ? record.logPipe : undefined;
        if (!logPipe) this.opts.log.warn('an adopted process writes its log file directly: it is not rotated until the process restarts', { processId: record.processId });
        const logDrained = logPipe ? this.logs.attach(want.module.name, logPipe) : Promise.resolve();
        const proc: Proc = { ...want, processId: record.processId, token: record.token, child, stopping: false, logPath: this.logs.logPath(want.module.name), ...(logPipe ? { logPipe } : {}), logDrained, exited: Promise.resolve(), ...(record.healthPort ? { health: { fd: -1, host, port: record.healthPort, close: () => undefined } } : {}) };
        proc.exited = new Promise<void>((resolve) => {
          child.once('exit', () => {
            proc.exitInfo = 'exited (an adopted process: its exit status is not known)';
            this.exited(proc);
            resolve();
          });
        });
        this.opts.api.adoptCredential(record.processId, record.token);
        writeRecord(this.runDir, record);
        this.live.set(want.module.name, proc);
        adopted.push(proc);
        this.opts.counters.inc('agent_processes_adopted_total');
        this.opts.log.info('adopted a process the previous agent version started', { processId: record.processId, pid });
        continue;
      }
      this.opts.log.warn('stopping a process left by a previous agent run', { pid, file });
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        continue;
      }
      const until = Date.now() + 5000;
      while (isOurs(pid, marker) && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    }
    // The pipes of processes that were stopped (or of an agent that crashed) have no writer left.
    this.logs.removeUnattached();
    return adopted;
  }
}

/** What an agent after an upgrade needs to adopt a running instance. */
function recordOf(p: Proc, pid: number): ProcessRecord {
  return { pid, processId: p.processId, token: p.token, module: p.module.name, digest: p.module.digest, ...(p.health ? { healthPort: p.health.port } : {}), ...(p.logPipe ? { logPipe: p.logPipe } : {}) };
}

/** Waits until these processes' output is all in their logs, or `ms` at most. */
async function drainedOrTimeout(procs: Proc[], ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([Promise.all(procs.map((p) => p.logDrained)), new Promise<void>((r) => (timer = setTimeout(r, ms)))]);
  clearTimeout(timer);
}
