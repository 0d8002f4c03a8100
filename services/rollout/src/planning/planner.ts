import { randomBytes } from 'node:crypto';
import type { PlanRequest, PlanResult, VoteReport } from '@changeover/contracts';
import { vetoesOf } from '../rollout/rollout.state.js';
import { resolveTargets } from '../creation/resolve-targets.js';
import type { RegistryPort } from '../nats/registry-client.js';
import type { Recipients } from '../workflow/rollout.workflow.js';

type Publish = (to: Recipients, body: Record<string, unknown>) => void;

interface Pending {
  nodes: Set<string>;
  votes: Map<string, VoteReport>;
  done: () => void;
}

/** Plan (dry run, DESIGN §5.9): resolve targets and selections, collect would-be votes, commit nothing. */
export class Planner {
  private readonly pending = new Map<string, Pending>();

  constructor(
    private readonly registry: RegistryPort,
    private readonly publishPropose: Publish,
  ) {}

  async plan(req: PlanRequest): Promise<PlanResult> {
    const planId = `plan-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
    const { assignments, unsupported } = await resolveTargets(this.registry, req.update, false);
    const nodes = new Set(assignments.flatMap((a) => a.nodes));
    const votes = new Map<string, VoteReport>();
    const finished = new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, req.voteTimeoutMs + 250);
      this.pending.set(planId, { nodes, votes, done: () => (clearTimeout(timer), resolve()) });
    });
    try {
      for (const a of assignments) {
        if (a.packages.length === 0) continue;
        const to: Recipients = a.classId ? { kind: 'class', classId: a.classId } : { kind: 'nodes', nodeIds: a.nodes };
        this.publishPropose(to, { rolloutId: planId, attempt: 0, packages: a.packages, voteTimeoutMs: req.voteTimeoutMs, dryRun: true, forced: false });
      }
      if (nodes.size > 0) await finished;
    } finally {
      this.pending.delete(planId);
    }
    const voteList = [...votes.values()].sort((a, b) => (a.nodeId < b.nodeId ? -1 : 1));
    const unsupportedNodes = new Set(unsupported.map((u) => u.nodeId));
    return {
      planId,
      assignments: assignments.map((a) => ({ selectionId: a.selectionId, ...(a.classId ? { classId: a.classId } : {}), nodes: a.nodes, packages: a.packages.map((p) => ({ name: p.name, version: p.version, modules: p.modules.map((m) => `${m.name}@${m.version} (${m.processorType})`) })) })),
      unsupported: unsupported.map((u) => ({ nodeId: u.nodeId, package: u.package, processorType: u.processorType })),
      votes: voteList.map((v) => ({ nodeId: v.nodeId, decision: v.decision, affectedProcesses: v.affectedProcesses, vetoes: v.decision === 'veto' ? vetoesOf(v.nodeId, v.verdicts) : [] })),
      noAnswer: [...nodes].filter((n) => !votes.has(n)).sort(),
      wouldBlock: voteList.some((v) => v.decision === 'veto') || unsupportedNodes.size > 0 || votes.size < nodes.size,
    };
  }

  /** A dry-run vote; only the instance that sent the plan knows it. */
  onVote(report: VoteReport): void {
    const p = this.pending.get(report.rolloutId);
    if (!p || !p.nodes.has(report.nodeId)) return;
    p.votes.set(report.nodeId, report);
    if (p.votes.size === p.nodes.size) p.done();
  }
}
