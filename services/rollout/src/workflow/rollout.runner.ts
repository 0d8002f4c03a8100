import { ChangeoverError, isChangeoverError } from '@changeover/contracts';
import type { NewEvent, StoredEvent } from '@changeover/event-store';
import { metrics, runInContext, sampledTraceparentOf, startRootSpan, traceparentOf, ROOT_CONTEXT, type Context, type Logger } from '@changeover/telemetry';
import { checkedNodes, decide, scopeOf, type RolloutCommand } from '../rollout/rollout.decider.js';
import { unprovidedApis } from '../dependency-check/dependency-check.js';
import { coalesce } from '../rollout/rollout.coalesce.js';
import { rolloutStreamId, type RolloutEvent } from '../rollout/rollout.events.js';
import { evolve, fold, initialState, isTerminal, type ActiveState, type RolloutState } from '../rollout/rollout.state.js';
import { needsOwner, onHello, owedSends, react, resume, timerCommand, whyIgnored, type Action } from './rollout.workflow.js';
import { recordAppended } from './rollout.metrics.js';
import { rolloutTraceContext, traceDecisions, traceSend, traceStep } from './rollout.tracing.js';

/** What the runner needs of the event store. */
export interface EventLog {
  append(streamId: string, expectedVersion: number | 'no-stream', events: NewEvent[]): Promise<{ nextExpectedVersion: number }>;
  readStream(streamId: string, options?: { after?: number; limit?: number }): Promise<StoredEvent[]>;
}

export interface RunnerDeps {
  store: EventLog;
  send(state: ActiveState, action: Extract<Action, { kind: 'propose' | 'commit' | 'abort' | 'regress' }>): Promise<void>;
  leases: { release(id: string): Promise<void>; ensure(id: string, opts?: { claim?: boolean }): Promise<void> };
  /** After every append: the projection, and a nudge to the owning instance. */
  appended(state: ActiveState, version: number, byOwner: boolean): void;
  /** Writes the projection row now: done before a finished rollout's lease goes, as nothing would rewrite it later. */
  settled(state: ActiveState, version: number): Promise<void>;
  forget(rolloutId: string): void;
  /** The `api@version` active nodes outside a rollout provide (the registry's inventories), for the inter-node check. */
  providedElsewhere(req: { consumes: string[]; excludeClasses: string[]; excludeNodes: string[] }): Promise<string[]>;
  clock: () => Date;
  /** Where deadlines wait (default: the process's timers); a test passes a clock it moves by hand. */
  timers?: Timers;
  log: Logger;
}

/** Timers on the rollout clock: `at` is a time on it in ms, the callback runs once it has passed. */
export interface Timers {
  at(ms: number, fn: () => void): { cancel(): void };
}

/**
 * The process's timers against the wall clock. A timeout runs on the monotonic clock and may fire a
 * millisecond before Date.now() reaches `ms` (or long before, past setTimeout's 24.8-day range): it
 * waits again for what is left, as a command stamped before its deadline is decided as not due and
 * nothing would fire it again (a vote deadline that never passed left a rollout voting for ever).
 */
export const realTimers: Timers = {
  at(ms, fn) {
    let t: ReturnType<typeof setTimeout>;
    const wait = () => {
      t = setTimeout(due, Math.max(0, Math.min(ms - Date.now(), 2 ** 31 - 1)));
      t.unref?.();
    };
    const due = () => (Date.now() >= ms ? fn() : wait());
    wait();
    return { cancel: () => clearTimeout(t) };
  },
};

export interface Applied {
  state: RolloutState;
  version: number;
  events: RolloutEvent[];
}

/** Who caused a command: `system`, or a REST caller's audit metadata (name, token id, role). */
export type EventActor = string | { actor: string; actorTokenId: string; actorRole: string };

/** A queued command; `resolve` is absent for a posted one (an agent report nobody waits for). */
type Job = { kind: 'command'; command: RolloutCommand; actor: EventActor; resolve?: (a: Applied) => void; reject: (e: unknown) => void; tries?: number } | { kind: 'catch-up'; resolve: () => void };

/** Appends a posted report is decided again after, when they fail for a transient reason (Postgres away). */
const MAX_REPORT_RETRIES = 10;
/** Rebuilds of a rollout's state tried while Postgres is away, before its queue gives up (the next lease round adopts it again). */
const MAX_RELOAD_TRIES = 30;
const transient = (e: unknown) => !isChangeoverError(e) || e.code === 'UNAVAILABLE';

interface Owned {
  id: string;
  state: RolloutState;
  version: number;
  queue: Job[];
  draining: boolean;
  timers: Map<string, { cancel(): void }>;
  dropped: boolean;
  /** The rollout's trace (from its first event): parent of every step span. */
  trace: Context;
  /** Long polls waiting for the version to pass `after` (`changed`). */
  waiters: Set<{ after: number; wake: () => void }>;
}

const ignored = metrics.counter({ name: 'changeover_rollout_reports_ignored_total', help: 'Agent reports and timers that changed nothing, by reason', labelNames: ['reason'] as const });
const refused = metrics.counter({ name: 'changeover_rollout_commands_refused_total', help: 'Rollout commands refused by the domain, by error code', labelNames: ['code'] as const });
const resent = metrics.counter({ name: 'changeover_rollout_commands_resent_total', help: 'Node commands (propose, commit, regress) sent again to nodes that owed an answer, by why (reconnect: reports to this instance may have been lost)', labelNames: ['reason'] as const });
const verifyFailures = metrics.counter({ name: 'changeover_rollout_verify_failures_total', help: 'Verify steps (the check once every node finished) that failed, by error code; transient ones are retried', labelNames: ['code'] as const });

const toRolloutEvents = (stored: StoredEvent[]) => stored.map((e) => ({ type: e.type, data: e.data }) as RolloutEvent);
const MAX_CONFLICT_RETRIES = 5;

/**
 * Carries out rollouts this instance owns: commands are queued per rollout, decided in batches and
 * appended in one write (so thousands of votes cost a few appends), then the workflow's actions run.
 */
export class RolloutRunner {
  private readonly owned = new Map<string, Owned>();
  private closed = false;

  constructor(private readonly deps: RunnerDeps) {}

  private now(): number {
    return this.deps.clock().getTime();
  }

  ownedIds(): string[] {
    return [...this.owned.keys()];
  }

  isOwned(id: string): boolean {
    return this.owned.has(id);
  }

  stateOf(id: string): { state: RolloutState; version: number } | undefined {
    const o = this.owned.get(id);
    return o && { state: o.state, version: o.version };
  }

  /**
   * Takes a rollout over: rebuild from its events, re-send what may be lost, re-arm its timers. The
   * queue is held meanwhile: a report or a catch-up that arrives during the load waits for the rebuilt
   * state, so nothing is folded in twice and no command is re-sent twice. A load that fails lets go of
   * the rollout, and the next lease round adopts it again.
   */
  async adopt(id: string): Promise<void> {
    if (this.owned.has(id) || this.closed) return;
    const o: Owned = { id, state: initialState(), version: 0, queue: [], draining: true, timers: new Map(), dropped: false, trace: ROOT_CONTEXT, waiters: new Set() };
    this.owned.set(id, o);
    try {
      const stored = await this.deps.store.readStream(rolloutStreamId(id));
      o.state = fold(toRolloutEvents(stored));
      o.version = stored.at(-1)?.streamPosition ?? 0;
      o.trace = rolloutTraceContext(stored[0]);
      this.wake(o);
    } catch (e) {
      this.drop(id);
      throw e;
    }
    try {
      this.deps.log.info({ rolloutId: id, status: o.state.status, version: o.version }, 'rollout adopted');
      // The projection write of the last append may have died with the previous owner: rewrite it from the events.
      if (o.state.status !== 'initial') this.deps.appended(o.state, o.version, true);
      if (o.state.status === 'initial') await this.complete(o);
      else await this.run(o, resume(o.state));
    } finally {
      o.draining = false;
      if (o.queue.length && !o.dropped) void this.drain(o);
    }
  }

  /** Stops carrying a rollout out (lease lost or shutting down). */
  drop(id: string): void {
    const o = this.owned.get(id);
    if (!o) return;
    o.dropped = true;
    for (const t of o.timers.values()) t.cancel();
    this.owned.delete(id);
    this.deps.forget(id);
    this.wake(o);
    // Whoever waits on a queued command hears that it was not carried out here.
    const gone = new ChangeoverError('UNAVAILABLE', `rollout ${id} is not owned here any more`);
    for (const job of o.queue.splice(0)) {
      if (job.kind === 'command') job.reject(gone);
      else job.resolve();
    }
  }

  /**
   * Resolves once the rollout's version passes `after`, or after `waitMs`; at once when it already
   * has or when the rollout is not owned here (then only its stream knows). A dropped rollout
   * releases its waiters. The answer is the owner's state as the change left it (also when the
   * change finished the rollout and this instance let it go), else undefined.
   */
  changed(id: string, after: number, waitMs: number): Promise<{ state: RolloutState; version: number } | undefined> {
    const o = this.owned.get(id);
    const past = (x: Owned) => (x.version > after && x.state.status !== 'initial' ? { state: x.state, version: x.version } : undefined);
    if (!o || o.version > after || waitMs <= 0) return Promise.resolve(o && past(o));
    return new Promise((resolve) => {
      const waiter = {
        after,
        wake: () => {
          clearTimeout(timer);
          o.waiters.delete(waiter);
          resolve(past(o));
        },
      };
      const timer = setTimeout(waiter.wake, waitMs);
      timer.unref?.();
      o.waiters.add(waiter);
    });
  }

  private wake(o: Owned): void {
    for (const w of o.waiters) if (o.dropped || o.version > w.after) w.wake();
  }

  /** Applies a command wherever the rollout is owned: locally through the queue, else with an expected-version append. */
  async apply(id: string, command: RolloutCommand, actor: EventActor): Promise<Applied> {
    const run = () => (this.owned.has(id) ? this.submit(id, command, actor) : this.applyRemote(id, command, actor));
    if (command.type === 'Create') {
      // The rollout's own trace: its root span's traceparent goes into the created event's metadata.
      const root = startRootSpan('rollout', { 'changeover.rollout_id': id, 'changeover.description': command.update.description.slice(0, 256) }, 'changeover.rollout');
      try {
        return await runInContext(root.context, run);
      } finally {
        root.span.end();
      }
    }
    return traceStep(await this.traceOf(id), `rollout.${command.type.toLowerCase()}`, id, run);
  }

  /** The trace context of a rollout: the owner's, else from its first event. */
  async traceOf(id: string): Promise<Context> {
    const o = this.owned.get(id);
    if (o) return o.trace;
    return rolloutTraceContext((await this.deps.store.readStream(rolloutStreamId(id), { limit: 1 }).catch(() => []))[0]);
  }

  submit(id: string, command: RolloutCommand, actor: EventActor = 'system'): Promise<Applied> {
    const o = this.owned.get(id);
    if (!o) return Promise.reject(new ChangeoverError('UNAVAILABLE', `rollout ${id} is not owned here`));
    return new Promise<Applied>((resolve, reject) => {
      o.queue.push({ kind: 'command', command, actor, resolve, reject });
      void this.drain(o);
    });
  }

  /**
   * Queues a command nobody waits for (an agent report): no promise, no result object, nothing held
   * but the command until its batch is decided. `refused` hears why it changed nothing, if the domain
   * or the append refused it. False when the rollout is not owned here.
   */
  post(id: string, command: RolloutCommand, actor: EventActor, refused: (e: unknown) => void): boolean {
    const o = this.owned.get(id);
    if (!o) return false;
    o.queue.push({ kind: 'command', command, actor, reject: refused });
    if (!o.draining) void this.drain(o);
    return true;
  }

  /** Another instance appended to an owned rollout: fold its events in and react to them. */
  catchUp(id: string): Promise<void> {
    const o = this.owned.get(id);
    if (!o) return Promise.resolve();
    return new Promise<void>((resolve) => {
      o.queue.push({ kind: 'catch-up', resolve });
      void this.drain(o);
    });
  }

  /** True when a rollout this instance runs has the node and is not finished: that rollout brings the node along. */
  inActiveRollout(nodeId: string): boolean {
    for (const o of this.owned.values()) if (o.state.status !== 'initial' && !isTerminal(o.state) && o.state.nodes.has(nodeId)) return true;
    return false;
  }

  /** A node said hello: re-send whatever any owned rollout still owes it. */
  async hello(nodeId: string): Promise<void> {
    for (const o of this.owned.values()) {
      if (o.state.status === 'initial') continue;
      await this.run(o, onHello(o.state, nodeId));
    }
  }

  /**
   * This instance's NATS connection came back: the reports agents sent while it was away reached no
   * one (core NATS keeps nothing for a subscriber that is gone), so every owned rollout sends again what
   * its nodes still owe an answer to. Answers to the first send are ignored as duplicates.
   */
  async resendOwed(reason: 'reconnect'): Promise<void> {
    for (const o of [...this.owned.values()]) {
      if (o.dropped || o.state.status === 'initial') continue;
      const sends = owedSends(o.state);
      if (sends.length === 0) continue;
      resent.inc({ reason }, sends.length);
      this.deps.log.info({ rolloutId: o.id, reason, sends: sends.map((a) => a.kind) }, 'sending what the nodes are owed again');
      await this.run(o, sends);
    }
  }

  close(): void {
    this.closed = true;
    for (const id of [...this.owned.keys()]) this.drop(id);
  }

  private async applyRemote(id: string, command: RolloutCommand, actor: EventActor): Promise<Applied> {
    for (let attempt = 0; ; attempt++) {
      const stored = await this.deps.store.readStream(rolloutStreamId(id));
      let state = fold(toRolloutEvents(stored));
      const version = stored.at(-1)?.streamPosition ?? 0;
      const decision = decide(command, state);
      if (decision instanceof ChangeoverError) {
        refused.inc({ code: decision.code });
        throw decision;
      }
      if (decision.length === 0) return { state, version, events: [] };
      // A lease row before the stream exists: a crash right after the first append must not leave a rollout
      // nobody adopts. It is this instance's, which acquires it right after the append.
      if (version === 0) await this.deps.leases.ensure(id, { claim: true });
      try {
        const r = await this.deps.store.append(rolloutStreamId(id), version === 0 ? 'no-stream' : version, decision.map((e) => this.toNew(e, actor, rolloutTraceContext(stored[0]))));
        const before = state;
        for (const e of decision) state = evolve(state, e);
        recordAppended(before, state, decision);
        traceDecisions(rolloutTraceContext(stored[0]), before, state, decision);
        if (state.status !== 'initial') {
          this.deps.appended(state, r.nextExpectedVersion, false);
          if (needsOwner(state)) await this.deps.leases.ensure(id);
        }
        return { state, version: r.nextExpectedVersion, events: decision };
      } catch (e) {
        if (isChangeoverError(e, 'VERSION_CONFLICT') && attempt < MAX_CONFLICT_RETRIES) continue;
        throw e;
      }
    }
  }

  /** The event's traceparent: the active span's if it is sampled, else the rollout's own trace (a timer, a report of an unsampled node). */
  private toNew(e: RolloutEvent, actor: EventActor, trace: Context = ROOT_CONTEXT): NewEvent {
    // With its sampled flag, so the notifier follows the rollout's sampling decision.
    const traceparent = sampledTraceparentOf() ?? traceparentOf(trace) ?? traceparentOf();
    return { type: e.type, data: e.data, metadata: { ...(typeof actor === 'string' ? { actor } : actor), ...(traceparent ? { traceparent } : {}) } };
  }

  private async drain(o: Owned): Promise<void> {
    if (o.draining) return;
    o.draining = true;
    try {
      while (o.queue.length && !o.dropped) await this.process(o, o.queue.splice(0, 5000));
    } catch (e) {
      this.deps.log.error({ err: e, rolloutId: o.id }, 'rollout queue failed');
    } finally {
      o.draining = false;
    }
  }

  private async process(o: Owned, jobs: Job[]): Promise<void> {
    const catchUps = jobs.filter((j): j is Extract<Job, { kind: 'catch-up' }> => j.kind === 'catch-up');
    let commands = jobs.filter((j): j is Extract<Job, { kind: 'command' }> => j.kind === 'command');
    if (catchUps.length) {
      await this.catchUpNow(o);
      catchUps.forEach((j) => j.resolve());
    }
    for (let attempt = 0; commands.length; attempt++) {
      // Decide each command against the state its predecessors left; one append for all.
      let state = o.state;
      const decided: { job: (typeof commands)[number]; events: RolloutEvent[] }[] = [];
      for (const job of commands) {
        const d = decide(job.command, state);
        if (d instanceof ChangeoverError) {
          refused.inc({ code: d.code });
          job.reject(d);
          continue;
        }
        if (d.length === 0) ignored.inc({ reason: whyIgnored(job.command, state) });
        for (const e of d) state = evolve(state, e);
        decided.push({ job, events: d });
      }
      const merged = this.merge(decided, o.trace);
      if (merged.events.length === 0) {
        for (const { job } of decided) job.resolve?.({ state, version: o.version, events: [] });
        return;
      }
      try {
        const r = await this.deps.store.append(rolloutStreamId(o.id), o.version === 0 ? 'no-stream' : o.version, merged.stored);
        recordAppended(o.state, state, merged.events);
        traceDecisions(o.trace, o.state, state, merged.events);
        o.state = state;
        o.version = r.nextExpectedVersion;
        this.wake(o);
      } catch (e) {
        // The state was folded in place: rebuild it from the stream before anything else (once Postgres answers again).
        await this.reloadWhenBack(o);
        if (isChangeoverError(e, 'VERSION_CONFLICT') && attempt < MAX_CONFLICT_RETRIES) {
          commands = decided.map((d) => d.job);
          continue;
        }
        // A report nobody waits for is not lost to a Postgres restart: the agent sends it once, so it is
        // decided again against the rebuilt state (a repeat of what was stored is ignored by the decider).
        const retried = (job: (typeof commands)[number]) => !job.resolve && transient(e) && (job.tries ?? 0) < MAX_REPORT_RETRIES && !o.dropped;
        const again = decided.filter(({ job }) => retried(job)).map(({ job }) => ({ ...job, tries: (job.tries ?? 0) + 1 }));
        for (const { job } of decided) if (!retried(job)) job.reject(e);
        if (again.length) {
          this.deps.log.warn({ err: e, rolloutId: o.id, reports: again.length }, 'append failed; the reports are decided again');
          commands = again;
          continue;
        }
        return;
      }
      for (const { job, events: evs } of decided) job.resolve?.({ state: o.state, version: o.version, events: evs });
      if (o.state.status !== 'initial') this.deps.appended(o.state, o.version, true);
      const all = decided.flatMap((d) => d.events);
      await this.run(o, all.flatMap((e) => react(o.state, e)));
      return;
    }
  }

  /**
   * The events a batch appends: each run of commands by the same actor, or by nodes (their reports),
   * has its per-node events merged (`coalesce`), so 10,000 votes are a few events. A merged run of
   * several nodes' reports is recorded as by `nodes`: the events name each node.
   */
  private merge(decided: { job: Extract<Job, { kind: 'command' }>; events: RolloutEvent[] }[], trace: Context): { events: RolloutEvent[]; stored: NewEvent[] } {
    const events: RolloutEvent[] = [];
    const stored: NewEvent[] = [];
    const group = (a: EventActor) => (typeof a === 'string' && a.startsWith('node:') ? 'node:' : a);
    for (let i = 0; i < decided.length; ) {
      const key = group(decided[i]!.job.actor);
      const actors = new Set<EventActor>();
      const run: RolloutEvent[] = [];
      let j = i;
      for (; j < decided.length && group(decided[j]!.job.actor) === key; j++) {
        actors.add(decided[j]!.job.actor);
        run.push(...decided[j]!.events);
      }
      const actor = actors.size === 1 ? decided[i]!.job.actor : 'nodes';
      for (const e of coalesce(run)) {
        events.push(e);
        stored.push(this.toNew(e, actor, trace));
      }
      i = j;
    }
    return { events, stored };
  }

  /** reload, tried again (with a growing pause) while the store does not answer: the queue waits meanwhile. */
  private async reloadWhenBack(o: Owned): Promise<void> {
    for (let tries = 1; ; tries++) {
      try {
        return await this.reload(o);
      } catch (e) {
        if (o.dropped || tries >= MAX_RELOAD_TRIES) throw e;
        this.deps.log.warn({ err: e, rolloutId: o.id, tries }, 'rollout state cannot be rebuilt yet; retrying');
        await new Promise((r) => setTimeout(r, Math.min(250 * 2 ** tries, 5000)));
      }
    }
  }

  private async reload(o: Owned): Promise<void> {
    const before = o.version;
    const stored = await this.deps.store.readStream(rolloutStreamId(o.id));
    o.state = fold(toRolloutEvents(stored));
    o.version = stored.at(-1)?.streamPosition ?? 0;
    this.wake(o);
    const fresh = toRolloutEvents(stored.filter((e) => e.streamPosition > before));
    await this.run(o, fresh.flatMap((e) => react(o.state, e)));
  }

  private async catchUpNow(o: Owned): Promise<void> {
    const stored = await this.deps.store.readStream(rolloutStreamId(o.id), { after: o.version });
    if (stored.length === 0) return;
    const fresh = toRolloutEvents(stored);
    for (const e of fresh) o.state = evolve(o.state, e);
    o.version = stored.at(-1)!.streamPosition;
    this.wake(o);
    // The appending instance's projection write may be lost with it; the owner writes the row too.
    if (o.state.status !== 'initial') this.deps.appended(o.state, o.version, true);
    await this.run(o, fresh.flatMap((e) => react(o.state, e)));
  }

  /** The thin runner: carries out the workflow's actions. */
  private async run(o: Owned, actions: Action[]): Promise<void> {
    let verify = false;
    let complete = false;
    for (const a of actions) {
      if (o.dropped) return;
      const state = o.state;
      if (state.status === 'initial') return;
      switch (a.kind) {
        case 'propose':
        case 'commit':
        case 'abort':
        case 'regress':
          await traceSend(o.trace, state, a, () => this.send(o, state, a));
          break;
        case 'schedule': {
          const { key, command } = timerCommand(a.timer);
          this.schedule(o, key, Date.parse(a.at), command);
          break;
        }
        case 'decide':
          verify = true;
          break;
        case 'ignore':
          ignored.inc({ reason: a.reason });
          break;
        case 'complete':
          complete = true;
          break;
        default: {
          const never: never = a;
          return never;
        }
      }
    }
    if (verify) this.verify(o);
    else if (complete && !needsOwner(o.state)) await this.complete(o);
  }

  private async send(o: Owned, state: ActiveState, a: Extract<Action, { kind: 'propose' | 'commit' | 'abort' | 'regress' }>, tries = 0): Promise<void> {
    try {
      await this.deps.send(state, a);
    } catch (e) {
      // The registry or NATS may be down for a moment: try again later; agents answer repeats from their record.
      this.deps.log.warn({ err: e, rolloutId: o.id, action: a.kind, tries }, 'sending a node command failed; retrying');
      if (tries < 20) this.schedule(o, `retry:${a.kind}:${tries}:${Math.random()}`, this.now() + 1000 * Math.min(2 ** tries, 30), null, () => this.send(o, o.state as ActiveState, a, tries + 1));
    }
  }

  /**
   * The check once every node finished (dependencies, then completion), verified with the fleet: a
   * consumed API none of the rollout's nodes provides may be provided by an active node outside it,
   * which only the registry knows. Only those APIs are asked about, so a rollout whose nodes provide
   * what they consume asks nothing. Nothing else would submit the check again, so every failure is
   * logged and counted: the registry being away, or a transient failure of the append (Postgres away,
   * a concurrent append), retries shortly rather than reporting discrepancies that may not exist; a
   * refusal by the domain means the rollout has moved on, and another decide action brings the next Verify.
   */
  private verify(o: Owned, tries = 0): void {
    const retry = () => this.schedule(o, `retry:verify:${tries}`, this.now() + 1000 * Math.min(2 ** tries, 30), null, async () => this.verify(o, tries + 1));
    void traceStep(o.trace, 'rollout.verify', o.id, async () => {
      const state = o.state;
      if (o.dropped || state.status === 'initial') return;
      let elsewhere: string[] = [];
      const consumes = unprovidedApis(checkedNodes(state));
      if (consumes.length > 0) {
        try {
          elsewhere = await this.deps.providedElsewhere({ consumes, ...scopeOf(state) });
        } catch (e) {
          const code = isChangeoverError(e) ? e.code : 'INTERNAL';
          verifyFailures.inc({ code });
          this.deps.log.warn({ err: e, rolloutId: o.id, code, tries }, 'asking the registry for API providers failed; verifying later');
          retry();
          return;
        }
      }
      await this.submit(o.id, { type: 'Verify', now: this.deps.clock(), elsewhere });
    }).catch((e: unknown) => {
      const code = isChangeoverError(e) ? e.code : 'INTERNAL';
      const transient = !isChangeoverError(e) || e.code === 'VERSION_CONFLICT' || e.code === 'UNAVAILABLE';
      verifyFailures.inc({ code });
      this.deps.log.warn({ err: e, rolloutId: o.id, code, tries, retrying: transient && !o.dropped }, 'verify failed');
      if (transient) retry();
    });
  }

  /** A timer is an event-derived deadline; re-armed from the state on every load. */
  private schedule(o: Owned, key: string, at: number, command: RolloutCommand | null, fn?: () => Promise<void>): void {
    if (o.timers.has(key) || o.dropped) return;
    const t = (this.deps.timers ?? realTimers).at(at, () => {
      o.timers.delete(key);
      if (o.dropped) return;
      if (fn) void fn();
      else if (command) {
        void this.submit(o.id, { ...command, now: this.deps.clock() }).catch((e) => {
          // A deadline must not be lost to a transient failure (Postgres restart): try again shortly.
          this.deps.log.warn({ err: e, rolloutId: o.id, key }, 'timer command failed; retrying');
          if (!isChangeoverError(e) || e.code === 'VERSION_CONFLICT' || e.code === 'UNAVAILABLE') this.schedule(o, key, this.now() + 1000, command);
        });
      }
    });
    o.timers.set(key, t);
  }

  private async complete(o: Owned): Promise<void> {
    const { state, version } = o;
    this.drop(o.id);
    if (state.status !== 'initial') {
      try {
        await this.deps.settled(state, version);
      } catch (e) {
        // Keep the lease: the next owner adopts the rollout and writes the row again.
        this.deps.log.warn({ err: e, rolloutId: o.id }, 'projection write failed; lease kept');
        return;
      }
    }
    await this.deps.leases.release(o.id).catch((e) => this.deps.log.warn({ err: e, rolloutId: o.id }, 'lease release failed'));
  }
}
