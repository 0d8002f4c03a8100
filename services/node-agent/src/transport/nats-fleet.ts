import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import { COMMAND_SCHEMAS, ChangeoverError, decode, encode, isChangeoverError, parseSubject, subjects, type AgentReport, type NodeCommand, type ValidateCommand, type ValidatedReport } from '@changeover/contracts';
import { publish } from '@changeover/messaging';
import { extractTraceContext } from '@changeover/telemetry';
import type { AgentCore, AnyCommand } from '../core/agent-core.js';
import type { TraceParent } from '../core/agent-tracing.js';
import type { Counters, Log, ReportSink } from '../core/ports.js';

export interface FleetOptions {
  /** `own`: one node subscribes to its own subjects; `wildcard`: one subscription to changeover.node.*.> filtered to local nodes. */
  nodeSubjects: 'own' | 'wildcard';
  heartbeatMs: number;
  counters: Counters;
  log: Log;
  /** Answers a validate round (group members' views of their logs); without it validate is FEATURE_NOT_ACTIVE. */
  validate?: (nodeId: string, cmd: ValidateCommand) => Promise<ValidatedReport>;
  /** Largest command accepted (default 1 MiB, the NATS default max_payload); larger ones are rejected TOO_LARGE, never decoded. */
  maxMessageBytes?: number;
  /** Hands reports still held by a batching sink to the connection; called by `stop`. */
  flushReports?: () => void;
  /**
   * Hellos and heartbeats of all local nodes paced to this many a second (0 or absent: as fast as the
   * event loop goes). A simulated fleet of hundreds of thousands of nodes otherwise says every hello in
   * a few seconds, more than a registry reads before NATS drops its messages as a slow consumer's.
   */
  reportsPerSecond?: number;
}

export const DEFAULT_MAX_COMMAND_BYTES = 1024 * 1024;

/** Nodes a command is handed to per turn of the event loop. */
const DELIVERY_SLICE = 500;

/** A decoded command on its way to its local nodes. */
interface Delivery {
  msg: Msg;
  command: NodeCommand;
  cmd: AnyCommand;
  via: { nodeId?: string; classId?: string };
  trace: TraceParent | undefined;
  targets: AgentCore[];
  next: number;
}

/** Reports of every local node go out on the one shared connection, with the trace context in headers. */
export function natsSink(nc: NatsConnection, log: Log): ReportSink {
  return {
    publish(nodeId: string, report: AgentReport, body: unknown) {
      try {
        publish(nc, subjects.agent(nodeId, report), body);
      } catch (e) {
        // A closed or draining connection: the report is re-derived on the next hello/heartbeat.
        log.warn('report not sent', { nodeId, report, error: e instanceof Error ? e.message : String(e) });
      }
    },
  };
}

/**
 * One NATS connection for one or many agent cores: subscribes once per class and dispatches to
 * every local node of it, says hello on start and after every reconnect, sends heartbeats.
 */
export class NatsFleet {
  private readonly byNode = new Map<string, AgentCore>();
  private readonly byClass = new Map<string, AgentCore[]>();
  private readonly subs: Subscription[] = [];
  private heartbeatTimer?: NodeJS.Timeout;
  private stopped = false;
  private readonly deliveries: Delivery[] = [];
  private delivering = false;

  constructor(
    private readonly nc: NatsConnection,
    cores: AgentCore[],
    private readonly opts: FleetOptions,
  ) {
    for (const c of cores) {
      this.byNode.set(c.nodeId, c);
      const list = this.byClass.get(c.opts.identity.classId) ?? [];
      list.push(c);
      this.byClass.set(c.opts.identity.classId, list);
    }
  }

  get cores(): AgentCore[] {
    return [...this.byNode.values()];
  }

  start(): void {
    const listen = (subject: string) => {
      const sub = this.nc.subscribe(subject, { callback: (err, msg) => (err ? this.opts.log.error('subscription failed', { subject, error: err.message }) : this.onMessage(msg)) });
      this.subs.push(sub);
    };
    if (this.opts.nodeSubjects === 'wildcard') listen('changeover.node.*.>');
    else for (const id of this.byNode.keys()) listen(subjects.nodeAll(id));
    for (const cls of this.byClass.keys()) listen(subjects.classAll(cls));
    void this.nc.flush().then(() => this.helloAll());
    void this.watchStatus();
    this.heartbeatTimer = setInterval(() => this.heartbeatAll(), this.opts.heartbeatMs);
    this.heartbeatTimer.unref();
  }

  private async watchStatus(): Promise<void> {
    for await (const s of this.nc.status()) {
      if (this.stopped) return;
      if (s.type === 'reconnect') {
        this.opts.log.info('reconnected; saying hello again');
        this.helloAll();
      }
    }
  }

  /** Hello from every local node, in slices so a large fleet does not stall the event loop. */
  helloAll(): void {
    void this.inSlices((c) => c.sayHello());
  }

  heartbeatAll(): void {
    void this.inSlices((c) => c.heartbeat());
  }

  private async inSlices(fn: (c: AgentCore) => void): Promise<void> {
    const rate = this.opts.reportsPerSecond ?? 0;
    // Paced: a tenth of a second's worth of reports, then the rest of that tenth waited out.
    const slice = rate > 0 ? Math.max(1, Math.round(rate / 10)) : 1000;
    let i = 0;
    let sliceStart = performance.now();
    for (const c of this.byNode.values()) {
      if (this.stopped) return;
      fn(c);
      if (++i % slice !== 0) continue;
      if (rate > 0) {
        this.opts.flushReports?.();
        const wait = sliceStart + 100 - performance.now();
        await new Promise((r) => (wait > 0 ? setTimeout(r, wait) : setImmediate(r)));
        sliceStart = performance.now();
      } else await new Promise((r) => setImmediate(r));
    }
  }

  private onMessage(msg: Msg): void {
    let command: NodeCommand;
    let targets: AgentCore[];
    let via: { nodeId?: string; classId?: string };
    try {
      const parsed = parseSubject(msg.subject);
      if (parsed.kind === 'node') {
        const core = this.byNode.get(parsed.nodeId);
        if (!core) {
          // With the wildcard subscription every other node's traffic passes by: not ours, not an error.
          if (this.opts.nodeSubjects === 'wildcard') return;
          throw new ChangeoverError('VALIDATION_FAILED', `command for node ${parsed.nodeId} reached another node`);
        }
        targets = [core];
        via = { nodeId: parsed.nodeId };
        command = parsed.command;
      } else if (parsed.kind === 'class') {
        targets = this.byClass.get(parsed.classId) ?? [];
        if (!targets.length) throw new ChangeoverError('VALIDATION_FAILED', `command for class ${parsed.classId} reached no node of it`);
        via = { classId: parsed.classId };
        command = parsed.command;
      } else {
        throw new ChangeoverError('VALIDATION_FAILED', `unexpected subject ${msg.subject}`);
      }
    } catch (e) {
      return this.reject(msg, 'unknown', e);
    }
    const maxBytes = this.opts.maxMessageBytes ?? DEFAULT_MAX_COMMAND_BYTES;
    if (msg.data.length > maxBytes) return this.reject(msg, command, new ChangeoverError('TOO_LARGE', `${command} command of ${msg.data.length} bytes exceeds ${maxBytes}`));
    if (command === 'validate') {
      const validate = this.opts.validate;
      if (!validate) return this.reject(msg, command, new ChangeoverError('FEATURE_NOT_ACTIVE', 'group validate rounds are not served by this agent version'));
      let round: ValidateCommand;
      try {
        round = decode(COMMAND_SCHEMAS.validate, msg.data, 'validate command');
      } catch (e) {
        return this.reject(msg, command, e);
      }
      return void Promise.all(targets.map((core) => validate(core.nodeId, round)))
        .then((reports) => {
          // A request gets its answer on the inbox; a plain publish is answered on changeover.agent.<node>.validated.
          for (const r of reports) if (msg.reply) msg.respond(encode({ ok: true, result: r }));
          else publish(this.nc, subjects.agent(r.nodeId, 'validated'), r);
        })
        .catch((e: unknown) => this.reject(msg, command, e));
    }
    let cmd: AnyCommand;
    try {
      // Decoded once and shared by every local node of a class: the payload objects are read-only.
      cmd = { kind: command, body: decode(COMMAND_SCHEMAS[command], msg.data, `${command} command`) } as AnyCommand;
    } catch (e) {
      return this.reject(msg, command, e);
    }
    // The rollout's trace context, read once for every local node the command reaches.
    const trace = msg.headers ? extractTraceContext(msg.headers) : undefined;
    this.deliveries.push({ msg, command, cmd, via, trace, targets, next: 0 });
    if (!this.delivering) this.deliver();
  }

  /**
   * Hands commands to their nodes in arrival order, at most DELIVERY_SLICE nodes per turn of the
   * event loop: a class broadcast to 10,000 simulated nodes is worked through a slice at a time
   * (each slice's nodes run to their next real wait before the next slice starts) instead of
   * 10,000 nodes' steps interleaving, all alive at once. A command for one node, with nothing
   * queued before it, is handed over at once, as it arrives.
   */
  private deliver(): void {
    this.delivering = true;
    let budget = DELIVERY_SLICE;
    while (this.deliveries.length && !this.stopped) {
      const d = this.deliveries[0]!;
      while (d.next < d.targets.length && budget > 0) {
        this.handOver(d, d.targets[d.next++]!);
        budget--;
      }
      if (d.next < d.targets.length) {
        setImmediate(() => this.deliver());
        return;
      }
      this.deliveries.shift();
    }
    this.delivering = false;
  }

  private handOver(d: Delivery, core: AgentCore): void {
    const { msg, command } = d;
    try {
      const done = core.handle(d.cmd, d.via, d.trace);
      if (msg.reply) msg.respond(encode({ ok: true, result: { nodeId: core.nodeId, received: command } }));
      done.catch((e: unknown) => {
        this.opts.log.warn('command rejected', { nodeId: core.nodeId, command, error: e instanceof Error ? e.message : String(e) });
      });
    } catch (e) {
      if (msg.reply) msg.respond(encode({ ok: false, error: isChangeoverError(e) ? e.toBody() : { code: 'INTERNAL', message: String(e) } }));
    }
  }

  private reject(msg: Msg, command: string, e: unknown): void {
    const err = isChangeoverError(e) ? e : new ChangeoverError('INTERNAL', e instanceof Error ? e.message : String(e));
    this.opts.counters.inc('agent_commands_rejected_total', { command, code: err.code });
    this.opts.log.warn('command rejected', { subject: msg.subject, code: err.code, error: err.message });
    if (msg.reply) msg.respond(encode({ ok: false, error: err.toBody() }));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.opts.flushReports?.();
    for (const s of this.subs) s.unsubscribe();
  }
}
