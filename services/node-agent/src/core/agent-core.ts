import {
  ChangeoverError,
  isChangeoverError,
  type AbortCommand,
  type CommitCommand,
  type HelloReport,
  type HeartbeatReport,
  type NodeTraits,
  type NodeCommand,
  type ProgressPhase,
  type ProgressReport,
  type ProposeCommand,
  type RegressCommand,
  type Verdict,
  type VersionRange,
  type VoteReport,
} from '@changeover/contracts';
import { analyzeProposalOn } from './views.js';
import { emptyState, internSet, internState, inventoryOf, mergeSet, upsertRecord, type NodeState, type RolloutRecord, type StoredPackage } from '../model/state.js';
import { ownVerdicts } from '../voting/own-verdicts.js';
import { signatureVerdicts } from '../voting/signed-proposal.js';
import { selectionVerdicts } from '../voting/selection-verdicts.js';
import { runChangeover, type ChangeoverOutcome } from './changeover.js';
import { allOf, localDeadline, withDeadline } from './deadline.js';
import { nodeTraits, storedPackageFor } from './select-modules.js';
import type { CoreOptions, EvaluateVerdict } from './ports.js';
import { step, traceUnit, vetoMetrics, type AgentTrace, type TraceParent } from './agent-tracing.js';

export type NodePhase = HeartbeatReport['phase'];

/** What a node says about itself besides its inventory. */
export interface AgentInfo {
  agentVersion: string;
  clusterVersions: VersionRange;
  characteristics: HelloReport['characteristics'];
}

const proposedKeys = new WeakMap<ProposeCommand['packages'], string[]>();

/** `name@version` of each proposed package (one list per proposal, shared read-only by the nodes it reaches). */
function proposedKeysOf(packages: ProposeCommand['packages']): string[] {
  let keys = proposedKeys.get(packages);
  if (!keys) proposedKeys.set(packages, (keys = packages.map((p) => `${p.name}@${p.version}`)));
  return keys;
}

export type AnyCommand =
  | { kind: 'propose'; body: ProposeCommand }
  | { kind: 'commit'; body: CommitCommand }
  | { kind: 'abort'; body: AbortCommand }
  | { kind: 'regress'; body: RegressCommand };


/**
 * The node agent's protocol logic, shared line for line by the real and the simulated runtime:
 * vote, fetch, change over, regress, answer repeats from the record, recover after a crash.
 */
export class AgentCore {
  state: NodeState = emptyState();
  phase: NodePhase = 'idle';
  private queue: Promise<void> = Promise.resolve();
  private readonly startedAt = new Date().toISOString();
  /** Rollouts whose abort arrived while their changeover runs. */
  readonly abortRequested = new Set<string>();

  constructor(
    readonly opts: CoreOptions,
    readonly info: AgentInfo,
  ) {}

  private traitsMemo: { node: NodeTraits; key: string } | undefined;

  /** What module selection sees of this node, the same traits the registry selects for (it takes them from the hello). */
  private get traits(): { node: NodeTraits; key: string } {
    return (this.traitsMemo ??= nodeTraits(this.opts.identity.processorType, this.info.characteristics));
  }

  get nodeId(): string {
    return this.opts.identity.nodeId;
  }

  /** Loads the store; an interrupted changeover is regressed to the last good set and reported. */
  async start(): Promise<void> {
    this.state = internState(await this.opts.store.load());
    const journal = this.state.journal;
    if (journal) {
      this.state = { ...this.state, active: internSet(journal.from.active), previous: internSet(journal.from.previous), journal: null };
      const rec = this.record(journal.rolloutId) ?? { rolloutId: journal.rolloutId };
      const final = this.progress(journal.rolloutId, journal.attempt, 'regressed', {
        error: { code: 'INTERRUPTED', message: `the node restarted during a ${journal.kind} (step ${journal.step}); regressed to the last good set` },
      });
      this.state.records = upsertRecord(this.state.records, journal.kind === 'commit' ? { ...rec, commitAttempt: journal.attempt, final } : { ...rec, regressAttempt: journal.attempt, regressFinal: final });
      await this.opts.store.save(this.state);
      this.opts.counters.inc('agent_recovered_changeovers_total');
      this.opts.log.warn('regressed an interrupted changeover', { rolloutId: journal.rolloutId, step: journal.step });
      this.pendingReports.push(final);
    }
    await this.opts.runtime.apply(this.state.active);
    // After apply: the processes adopted or started are running, so what they use is known.
    await this.collectGarbage();
  }

  /** Drops the versions the node no longer keeps (saved first), then deletes the module files nothing uses; never fails a command. */
  private async collectGarbage(): Promise<void> {
    const gc = this.opts.hygiene;
    if (!gc) return;
    try {
      const next = gc.retain(this.state);
      if (next !== this.state) {
        const kept = { ...next, kept: internSet(next.kept) };
        await this.opts.store.save(kept);
        this.state = kept;
      }
    } catch (e) {
      this.opts.counters.inc('agent_gc_failures_total', { reason: 'save' });
      this.opts.log.error('cannot save the state without the older versions: nothing deleted', { error: e instanceof Error ? e.message : String(e) });
      return;
    }
    await gc.sweep(this.state).catch((e: unknown) => {
      this.opts.counters.inc('agent_gc_failures_total', { reason: 'sweep' });
      this.opts.log.error('module garbage collection failed', { error: e instanceof Error ? e.message : String(e) });
    });
  }

  private pendingReports: ProgressReport[] = [];

  /** Says hello (on start and after every reconnect) and re-sends reports made while offline. */
  sayHello(): void {
    const hello: HelloReport = {
      nodeId: this.nodeId,
      classId: this.opts.identity.classId,
      processorType: this.opts.identity.processorType,
      characteristics: this.info.characteristics,
      agentVersion: this.info.agentVersion,
      clusterVersions: this.info.clusterVersions,
      inventory: inventoryOf(this.state),
      startedAt: this.startedAt,
    };
    this.opts.sink.publish(this.nodeId, 'hello', hello);
    for (const r of this.pendingReports.splice(0)) this.opts.sink.publish(this.nodeId, 'progress', r);
  }

  heartbeat(now = new Date()): void {
    const hb: HeartbeatReport = {
      nodeId: this.nodeId,
      classId: this.opts.identity.classId,
      at: now.toISOString(),
      agentVersion: this.info.agentVersion,
      clusterVersions: this.info.clusterVersions,
      inventoryDigest: inventoryOf(this.state).digest,
      phase: this.phase,
    };
    this.opts.sink.publish(this.nodeId, 'heartbeat', hb);
  }

  /** Checks the addressing (throws at once), then runs the command after any earlier one; the promise rejects with a typed, counted error. */
  handle(cmd: AnyCommand, via: { nodeId?: string; classId?: string }, trace?: TraceParent): Promise<void> {
    const body = cmd.body;
    if ((via.nodeId && via.nodeId !== this.nodeId) || (body.nodeId && body.nodeId !== this.nodeId)) {
      throw this.rejected(new ChangeoverError('VALIDATION_FAILED', `command addressed to node ${body.nodeId ?? via.nodeId}, this is ${this.nodeId}`), cmd.kind);
    }
    const cls = this.opts.identity.classId;
    if ((via.classId && via.classId !== cls) || (body.classId && body.classId !== cls)) {
      throw this.rejected(new ChangeoverError('VALIDATION_FAILED', `command addressed to class ${body.classId ?? via.classId}, this node is of class ${cls}`), cmd.kind);
    }
    if (cmd.kind === 'abort') this.abortRequested.add(cmd.body.rolloutId);
    const run = this.queue.then(() => traceUnit(this, cmd, trace, (unit) => this.dispatch(cmd, unit)));
    this.queue = run.catch(() => undefined);
    return run.catch((e: unknown) => {
      throw this.rejected(e, cmd.kind);
    });
  }

  private rejected(e: unknown, kind: NodeCommand): ChangeoverError {
    const err = isChangeoverError(e) ? e : new ChangeoverError('INTERNAL', e instanceof Error ? e.message : String(e));
    this.opts.counters.inc('agent_commands_rejected_total', { command: kind, code: err.code });
    if (err.code === 'INTERNAL') this.opts.log.error('command failed', { command: kind, error: err.message });
    return err;
  }

  private async dispatch(cmd: AnyCommand, unit: AgentTrace): Promise<void> {
    this.opts.counters.inc('agent_commands_total', { command: cmd.kind });
    switch (cmd.kind) {
      case 'propose':
        return this.propose(cmd.body, unit);
      case 'commit':
        return this.commit(cmd.body, unit);
      case 'abort':
        return this.abort(cmd.body);
      case 'regress':
        return this.regress(cmd.body, unit);
      default: {
        const never: never = cmd;
        throw new ChangeoverError('VALIDATION_FAILED', `unknown command ${JSON.stringify(never)}`);
      }
    }
  }

  record(rolloutId: string): RolloutRecord | undefined {
    return this.state.records.find((r) => r.rolloutId === rolloutId);
  }

  private async saveRecord(record: RolloutRecord): Promise<void> {
    this.state = { ...this.state, records: upsertRecord(this.state.records, record) };
    const saving = this.opts.store.save(this.state);
    if (saving) await saving;
  }

  // ── Propose → one vote (claims 1, 5, 6) ──

  private async propose(cmd: ProposeCommand, unit: AgentTrace): Promise<void> {
    const rec = this.record(cmd.rolloutId);
    if (rec?.vote && rec.voteAttempt === cmd.attempt) {
      this.opts.counters.inc('agent_repeats_answered_total', { command: 'propose' });
      this.opts.sink.publish(this.nodeId, 'vote', rec.vote);
      return;
    }
    if (rec?.voteAttempt !== undefined && cmd.attempt < rec.voteAttempt) {
      throw new ChangeoverError('CONFLICT', `proposal attempt ${cmd.attempt} of ${cmd.rolloutId} is older than attempt ${rec.voteAttempt} already answered`);
    }
    this.phase = 'voting';
    try {
      const vote = await step(unit, 'agent.vote', () => this.vote(cmd, unit), unit.recording ? { 'changeover.attempt': cmd.attempt } : undefined);
      if (vote.decision === 'veto') unit.keep('veto');
      if (!cmd.dryRun) await this.saveRecord({ ...(rec ?? { rolloutId: cmd.rolloutId }), voteAttempt: cmd.attempt, vote, proposed: proposedKeysOf(cmd.packages), aborted: false });
      this.opts.sink.publish(this.nodeId, 'vote', vote);
    } finally {
      this.phase = 'idle';
    }
  }

  private async vote(cmd: ProposeCommand, unit: AgentTrace): Promise<VoteReport> {
    const analysis = analyzeProposalOn(this.state.active, cmd.packages, this.opts.runtime);
    let bytesNeeded = 0;
    for (const m of analysis.changedModules) {
      const has = this.opts.store.hasBlob(m.digest);
      if (!(typeof has === 'boolean' ? has : await has)) bytesNeeded += m.size ?? 0;
    }
    const own = ownVerdicts({
      processorType: this.opts.identity.processorType,
      packages: cmd.packages,
      analysis,
      bytesNeeded,
      bytesFree: bytesNeeded > 0 || this.opts.minFreeBytes > 0 ? await this.opts.store.freeBytes() : Number.MAX_SAFE_INTEGER,
      minFreeBytes: this.opts.minFreeBytes,
    });
    const badSignatures = signatureVerdicts(cmd.packages, cmd.signed, this.opts.verifySignature);
    if (badSignatures.length) this.opts.counters.inc('agent_signature_failures_total');
    own.push(...badSignatures);
    // Only over manifests whose signatures hold: the selection the commit will install must be the one proposed.
    if (!badSignatures.length) {
      const otherSelection = selectionVerdicts(cmd.packages, cmd.signed, (manifest, signature) => storedPackageFor(manifest, signature, this.traits.node, this.traits.key));
      if (otherSelection.length) this.opts.counters.inc('agent_selection_mismatches_total');
      own.push(...otherSelection);
    }
    const deadline = localDeadline(cmd.voteTimeoutMs);
    // Every process is asked at once; a runtime's answers already at hand are taken without waiting.
    const answers = analysis.affected.map((a) =>
      withDeadline<EvaluateVerdict>(
        this.opts.runtime.evaluate(a.processId, { kind: 'evaluate', rolloutId: cmd.rolloutId, attempt: cmd.attempt, changes: analysis.changes, replacedModules: analysis.replacedModules, why: a.why, deadlineMs: deadline }),
        deadline,
        () => ({ decision: 'veto', reason: 'NO_ANSWER', message: `no answer within ${deadline} ms` }),
        (e) => ({ decision: 'veto', reason: 'NO_ANSWER', message: `evaluate failed: ${e instanceof Error ? e.message : String(e)}`.slice(0, 4000) }),
      ),
    );
    const settled = allOf(answers);
    const evaluated = Array.isArray(settled) ? settled : await settled;
    const verdicts: Verdict[] = own;
    for (let i = 0; i < evaluated.length; i++) {
      const a = analysis.affected[i]!;
      verdicts.push({ processId: a.processId, module: a.module, ...evaluated[i]! });
    }
    const vetoed = verdicts.some((v) => v.decision === 'veto');
    vetoMetrics(verdicts, cmd, unit);
    this.opts.counters.inc('agent_votes_total', { decision: vetoed && !cmd.forced ? 'veto' : 'accept' });
    return {
      nodeId: this.nodeId,
      rolloutId: cmd.rolloutId,
      attempt: cmd.attempt,
      decision: vetoed && !cmd.forced ? 'veto' : 'accept',
      verdicts,
      affectedProcesses: analysis.affected.map((a) => a.processId),
      dryRun: cmd.dryRun,
    };
  }

  // ── Commit → fetch, change over, report (claims 7, 8, 12–14) ──

  private async commit(cmd: CommitCommand, unit: AgentTrace): Promise<void> {
    const rec = this.record(cmd.rolloutId);
    if (rec?.commitAttempt !== undefined && cmd.attempt <= rec.commitAttempt) {
      if (rec.final && cmd.attempt === rec.commitAttempt) {
        this.opts.counters.inc('agent_repeats_answered_total', { command: 'commit' });
        this.opts.sink.publish(this.nodeId, 'progress', rec.final);
        return;
      }
      throw new ChangeoverError('CONFLICT', `commit attempt ${cmd.attempt} of ${cmd.rolloutId} is not newer than attempt ${rec.commitAttempt} already carried out`);
    }
    const fail = (code: string, message: string) => this.finish(cmd.rolloutId, cmd.attempt, 'commit', { ok: false, code, message });
    if (rec?.aborted) return fail('INVALID_STATE', `rollout ${cmd.rolloutId} was aborted on this node`);
    if (!cmd.forced && rec?.vote?.decision !== 'accept') {
      return fail('NOT_IN_ROLLOUT', rec?.vote ? `this node vetoed ${cmd.rolloutId}; only a forced commit installs it` : `no accepted proposal of ${cmd.rolloutId} on this node`);
    }
    const proposed = rec?.vote ? this.proposedKeys(rec) : null;
    const incoming: StoredPackage[] = [];
    for (const p of cmd.packages) {
      const key = `${p.manifest.name}@${p.manifest.version}`;
      if (proposed && proposed.length && !proposed.includes(key)) return fail('VALIDATION_FAILED', `package ${key} was not in the proposal`);
      try {
        this.opts.verifySignature(p.manifest, p.signature);
      } catch (e) {
        this.opts.counters.inc('agent_signature_failures_total');
        return fail(isChangeoverError(e) ? e.code : 'SIGNATURE_INVALID', e instanceof Error ? e.message : String(e));
      }
      const picked = storedPackageFor(p.manifest, p.signature, this.traits.node, this.traits.key);
      if (!picked.ok) return fail('PROCESSOR_UNSUPPORTED', `package ${key} is not supported on this node: ${picked.reason}`);
      incoming.push(picked.pkg);
    }
    const outcome = await runChangeover(this, { rolloutId: cmd.rolloutId, attempt: cmd.attempt, kind: 'commit', target: mergeSet(this.state.active, incoming), timeoutMs: cmd.changeoverTimeoutMs, trace: unit });
    await this.finish(cmd.rolloutId, cmd.attempt, 'commit', outcome);
    // After the report: the node is done and says so first; the next command waits for the collection.
    if (outcome.ok) await this.collectGarbage();
  }

  private proposedKeys(rec: RolloutRecord): string[] {
    return rec.proposed ?? [];
  }

  /** Publishes and records the terminal report of a commit or regress. */
  private async finish(rolloutId: string, attempt: number, kind: 'commit' | 'regress', outcome: ChangeoverOutcome): Promise<void> {
    const phase: ProgressPhase = outcome.ok ? (kind === 'commit' ? 'completed' : 'regressed') : outcome.code === 'ABORTED' ? 'aborted' : 'failed';
    const final = this.progress(rolloutId, attempt, phase, outcome.ok ? { bytesFetched: outcome.bytesFetched, modulesFetched: outcome.modulesFetched, modulesUnchanged: outcome.modulesUnchanged } : { error: { code: outcome.code, message: outcome.message.slice(0, 4000) }, ...(outcome.bytesFetched !== undefined ? { bytesFetched: outcome.bytesFetched } : {}) });
    const rec = this.record(rolloutId) ?? { rolloutId };
    await this.saveRecord(kind === 'commit' ? { ...rec, commitAttempt: attempt, final } : { ...rec, regressAttempt: attempt, regressFinal: final });
    this.opts.counters.inc('agent_changeovers_total', { kind, phase });
    if (!outcome.ok) this.opts.log.warn(`${kind} did not complete`, { rolloutId, code: outcome.code, message: outcome.message.slice(0, 500) });
    // One message: the rollout service records the outcome with the inventory it carries (claim 9), and
    // the registry, which keeps each node's inventory (claim 12), takes it from the rollout's events.
    this.opts.sink.publish(this.nodeId, 'progress', final);
  }

  progress(rolloutId: string, attempt: number, phase: ProgressPhase, extra: Partial<ProgressReport> = {}): ProgressReport {
    const terminal = phase === 'completed' || phase === 'failed' || phase === 'regressed' || phase === 'aborted';
    return { nodeId: this.nodeId, rolloutId, attempt, phase, ...extra, ...(terminal ? { inventory: inventoryOf(this.state) } : {}) };
  }

  reportPhase(rolloutId: string, attempt: number, phase: ProgressPhase, extra: Partial<ProgressReport> = {}): void {
    this.opts.sink.publish(this.nodeId, 'progress', this.progress(rolloutId, attempt, phase, extra));
  }

  // ── Abort ──

  private async abort(cmd: AbortCommand): Promise<void> {
    this.abortRequested.delete(cmd.rolloutId);
    const rec = this.record(cmd.rolloutId);
    if (rec?.final?.phase === 'completed') {
      // Already changed over: undoing it is a regress, which the orchestrator sends.
      this.opts.sink.publish(this.nodeId, 'progress', rec.final);
      return;
    }
    const final = this.progress(cmd.rolloutId, cmd.attempt, 'aborted', { error: { code: 'ABORTED', message: cmd.reason } });
    await this.saveRecord({ ...(rec ?? { rolloutId: cmd.rolloutId }), aborted: true, final });
    this.opts.sink.publish(this.nodeId, 'progress', final);
  }

  // ── Regress (claim 11) ──

  private async regress(cmd: RegressCommand, unit: AgentTrace): Promise<void> {
    const rec = this.record(cmd.rolloutId);
    if (rec?.regressAttempt !== undefined && cmd.attempt <= rec.regressAttempt) {
      if (rec.regressFinal && cmd.attempt === rec.regressAttempt) {
        this.opts.counters.inc('agent_repeats_answered_total', { command: 'regress' });
        this.opts.sink.publish(this.nodeId, 'progress', rec.regressFinal);
        return;
      }
      throw new ChangeoverError('CONFLICT', `regress attempt ${cmd.attempt} of ${cmd.rolloutId} is not newer than attempt ${rec.regressAttempt}`);
    }
    const fail = (code: string, message: string) => this.finish(cmd.rolloutId, cmd.attempt, 'regress', { ok: false, code, message });
    let target: StoredPackage[];
    if (cmd.to.kind === 'previous') {
      if (!this.state.previous.length) return fail('NOT_FOUND', 'no previous set is kept on this node');
      target = this.state.previous;
    } else {
      const found = await this.findVersion(cmd.to.package, cmd.to.version);
      if (!found.ok) return fail(found.code, found.message);
      target = mergeSet(this.state.active, [found.pkg]);
    }
    const outcome = await runChangeover(this, { rolloutId: cmd.rolloutId, attempt: cmd.attempt, kind: 'regress', target, timeoutMs: 300_000, trace: unit });
    await this.finish(cmd.rolloutId, cmd.attempt, 'regress', outcome);
    if (outcome.ok) await this.collectGarbage();
  }

  private async findVersion(name: string, version: string): Promise<{ ok: true; pkg: StoredPackage } | { ok: false; code: string; message: string }> {
    const local = [...this.state.active, ...this.state.previous, ...this.state.kept].find((p) => p.manifest.name === name && p.manifest.version === version);
    if (local) return { ok: true, pkg: local };
    let remote: Awaited<ReturnType<NonNullable<CoreOptions['manifests']>['get']>> = null;
    try {
      remote = this.opts.manifests ? await this.opts.manifests.get({ name, version }) : null;
    } catch (e) {
      // The registry not answering is not "no such version": the regress fails with the real cause, and can be retried.
      const code = isChangeoverError(e) ? e.code : 'UNAVAILABLE';
      this.opts.counters.inc('agent_manifest_fetch_failures_total', { code });
      this.opts.log.warn('manifest not fetched from the registry', { package: name, version, code, error: e instanceof Error ? e.message : String(e) });
      return { ok: false, code, message: `${name}@${version} is not kept on this node and the registry did not answer: ${e instanceof Error ? e.message : String(e)}` };
    }
    if (!remote) return { ok: false, code: 'NOT_FOUND', message: `${name}@${version} is neither kept on this node nor in the registry` };
    try {
      this.opts.verifySignature(remote.manifest, remote.signature);
    } catch (e) {
      return { ok: false, code: isChangeoverError(e) ? e.code : 'SIGNATURE_INVALID', message: e instanceof Error ? e.message : String(e) };
    }
    const picked = storedPackageFor(remote.manifest, remote.signature, this.traits.node, this.traits.key);
    if (!picked.ok) return { ok: false, code: 'PROCESSOR_UNSUPPORTED', message: `${name}@${version} is not supported on this node: ${picked.reason}` };
    return picked;
  }
}
