import { existsSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { ProgressReport } from '@changeover/contracts';
import type { Counters, Log, ReportSink } from '../core/ports.js';
import type { GroupManager } from '../groups/group-manager.js';
import { writeAtomic } from '../store/atomic-file.js';

/** The exit code that asks the launcher to start the agent again (from the newly installed package). */
export const RESTART_EXIT_CODE = 75;
const FILE = 'self-upgrade.json';
/** The progress error code when members that left for the upgrade are not back by the deadline. */
export const MEMBERS_NOT_REJOINED = 'MEMBERS_NOT_REJOINED';

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
      groups: () => Pick<GroupManager, 'localMembers'>;
      restart: () => Promise<void>;
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

  /** Before the node says hello: picks up a completion held by the previous agent version. */
  async load(): Promise<void> {
    const path = join(this.opts.stateDir, FILE);
    if (!existsSync(path)) return this.released();
    this.held = JSON.parse(await readFile(path, 'utf8')) as Pending;
  }

  /**
   * After start: waits until every member that left has joined again, then sends the held
   * completion. A member not back within `timeoutMs` makes it a `failed` report
   * (MEMBERS_NOT_REJOINED, naming them) instead: the rollout must not move on while a group lacks it.
   */
  async resume(timeoutMs: number): Promise<void> {
    const held = this.held;
    if (!held) return;
    const deadline = Date.now() + timeoutMs;
    const missing = () => {
      const now = new Set(this.opts.groups().localMembers().map((m) => `${m.groupId}/${m.memberId}`));
      return held.members.map((m) => `${m.groupId}/${m.memberId}`).filter((k) => !now.has(k));
    };
    while (missing().length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const gone = missing();
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
