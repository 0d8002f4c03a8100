import { existsSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { ProgressReport } from '@changeover/contracts';
import type { Counters, Log, ReportSink } from '../core/ports.js';
import type { GroupManager } from '../groups/group-manager.js';
import { inventoryOf } from '../model/state.js';
import { writeAtomic } from '../store/atomic-file.js';
import type { FsStore } from '../store/fs-store.js';
import { LAUNCH_FILES, type RollbackNote } from './launcher-config.js';
import { AGENT_UPGRADE_PROBATION_FAILED } from './probation.js';

/** The exit code that asks the launcher to start the agent again (from the newly installed package). */
export const RESTART_EXIT_CODE = 75;
const FILE = 'self-upgrade.json';
/** The progress error code when members that left for the upgrade are not back by the deadline. */
export const MEMBERS_NOT_REJOINED = 'MEMBERS_NOT_REJOINED';
/** The progress error code when the new agent version did not come up and the launcher started this one again. */
export const AGENT_UPGRADE_FAILED = 'AGENT_UPGRADE_FAILED';

interface Pending {
  report: ProgressReport;
  members: { groupId: string; memberId: string }[];
}

/**
 * Upgrading the agent is a rollout like any other (DESIGN §6, claims 4, 5): when a commit installs
 * the agent's own package at another version, its `completed` report is held, the node's group
 * members leave, and the agent exits for the launcher to start the new version. The new agent sends
 * the held report only once the members are back in their groups, so the rollout (one node at a
 * time) moves to the next node only then and the groups keep a quorum on the other nodes.
 */
export class SelfUpgrade {
  private held: Pending | null = null;
  private released!: () => void;
  private readonly gate = new Promise<void>((r) => (this.released = r));
  private restarting = false;

  constructor(
    private readonly opts: {
      stateDir: string;
      agentPackage: string;
      agentVersion: string;
      sink: ReportSink;
      log: Log;
      counters: Counters;
      store: Pick<FsStore, 'load' | 'save'>;
      groups: () => Pick<GroupManager, 'localMembers'>;
      restart: () => Promise<void>;
      /** Resolves once the launcher's probation of this version passed (or it keeps none). */
      probation?: () => Promise<unknown>;
    },
  ) {}

  /** Reports pass through, except the completion of our own upgrade (held) and, after a restart, repeats of it until members are back. */
  get sink(): ReportSink {
    return {
      publish: (nodeId, report, body) => {
        if (report === 'progress') {
          const p = body as ProgressReport;
          if (this.held && p.rolloutId === this.held.report.rolloutId) {
            void this.gate.then(() => this.opts.sink.publish(nodeId, report, body));
            return;
          }
          const own = p.phase === 'completed' ? p.inventory?.active.find((x) => x.name === this.opts.agentPackage) : undefined;
          if (own && own.version !== this.opts.agentVersion && !this.restarting) {
            this.restarting = true;
            this.opts.log.info('agent package installed: members leave, the agent restarts into it', { version: own.version, rolloutId: p.rolloutId });
            setImmediate(() => void this.restartInto(p));
            return;
          }
        }
        this.opts.sink.publish(nodeId, report, body);
      },
    };
  }

  private async restartInto(report: ProgressReport): Promise<void> {
    const pending: Pending = { report, members: this.opts.groups().localMembers() };
    await writeAtomic(join(this.opts.stateDir, FILE), JSON.stringify(pending));
    await this.opts.restart();
  }

  /**
   * Before the node says hello (and before the active set is applied): picks up a completion held by
   * the previous agent version. When the launcher rolled the new version back (it did not come up),
   * this older agent runs again: the store goes back to the set that ran before the upgrade and the
   * held report becomes a failure, so the rollout does not count the node done: AGENT_UPGRADE_FAILED
   * when the new version never came up, AGENT_UPGRADE_PROBATION_FAILED when it came up and then
   * exited or turned unhealthy during its probation (the launcher saw it; its completion was still held).
   */
  async load(): Promise<void> {
    const path = join(this.opts.stateDir, FILE);
    const notePath = join(this.opts.stateDir, LAUNCH_FILES.rollback);
    const note = existsSync(notePath) ? (JSON.parse(await readFile(notePath, 'utf8')) as RollbackNote) : null;
    if (!existsSync(path)) {
      if (note) await rm(notePath, { force: true });
      return this.released();
    }
    this.held = JSON.parse(await readFile(path, 'utf8')) as Pending;
    if (!note) return;
    const state = await this.opts.store.load();
    const probation = note.stage === 'probation';
    const code = probation ? AGENT_UPGRADE_PROBATION_FAILED : AGENT_UPGRADE_FAILED;
    const what = probation ? `came up but failed during its probation (${note.reason})` : `did not come up (${note.reason})`;
    const message = `agent ${this.opts.agentPackage} ${what}; the launcher started version ${this.opts.agentVersion} again and the node went back to its previous set`.slice(0, 4000);
    const rolloutId = this.held.report.rolloutId;
    const failed: ProgressReport = { ...this.held.report, phase: 'failed', error: { code, message }, inventory: inventoryOf({ ...state, active: state.previous }) };
    // `previous` stays: a regress to it must not install the version that just failed to start. The
    // rollout's record answers a repeated commit with the failure, not the completion that installed it
    // (a repeat answered `completed` would make this agent restart into the failed version).
    const records = state.records.map((r) => (r.rolloutId === rolloutId && r.final ? { ...r, final: failed } : r));
    const back = { ...state, active: state.previous, journal: null, records };
    await this.opts.store.save(back);
    this.held = { ...this.held, report: failed };
    await writeAtomic(path, JSON.stringify(this.held));
    await rm(notePath, { force: true });
    this.opts.counters.inc('agent_upgrade_failures_total', { reason: code });
    this.opts.log.error(probation ? 'the new agent version failed its probation: rolled back' : 'the new agent version did not come up: rolled back', { reason: note.reason, failedEntry: note.failedEntry, rolloutId: this.held.report.rolloutId });
  }

  /**
   * After start: waits until every member that left has joined again, then sends the held
   * completion. A member not back within `timeoutMs` makes it a `failed` report
   * (MEMBERS_NOT_REJOINED, naming them) instead: the rollout must not move on while a group lacks it.
   * Either report waits for the launcher's probation of this version as well: a version rolled back
   * during it never reported, and the version started instead reports the failure.
   */
  async resume(timeoutMs: number): Promise<void> {
    const held = this.held;
    if (!held) return;
    const deadline = Date.now() + timeoutMs;
    const missing = () => {
      const now = new Set(this.opts.groups().localMembers().map((m) => `${m.groupId}/${m.memberId}`));
      return held.members.map((m) => `${m.groupId}/${m.memberId}`).filter((k) => !now.has(k));
    };
    const probation = held.report.phase === 'completed' && this.opts.probation ? this.opts.probation() : Promise.resolve();
    while (missing().length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const gone = missing();
    await probation;
    await rm(join(this.opts.stateDir, FILE), { force: true });
    this.held = null;
    if (gone.length) {
      this.opts.counters.inc('agent_upgrade_failures_total', { reason: MEMBERS_NOT_REJOINED });
      this.opts.log.error('group members did not rejoin after the agent upgrade: reporting the upgrade failed', { missing: gone, timeoutMs });
      const message = `group members not back within ${timeoutMs} ms after the agent upgrade: ${gone.join(', ')}`.slice(0, 4000);
      this.opts.sink.publish(held.report.nodeId, 'progress', { ...held.report, phase: 'failed', error: { code: MEMBERS_NOT_REJOINED, message } } satisfies ProgressReport);
    } else {
      this.opts.sink.publish(held.report.nodeId, 'progress', held.report);
    }
    this.released();
  }
}
