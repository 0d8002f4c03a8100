import { RolloutPolicy, type Assignment, type Inventory, type InstalledPackage, type ProgressReport, type SelectedPackage, type Verdict, type VoteReport } from '@changeover/contracts';
import type { RolloutCommand } from '../rollout/rollout.decider.js';

/** Small builders shared by the unit and integration tests. */
export const T0 = new Date('2030-01-01T00:00:00.000Z');
export const at = (ms: number) => new Date(T0.getTime() + ms);
export const digest = (c: string) => `sha256:${c.repeat(64).slice(0, 64)}`;

export function selected(name: string, opts: Partial<Pick<SelectedPackage, 'provides' | 'consumes' | 'requires'>> & { version?: string; dependsOn?: string[] } = {}): SelectedPackage {
  return {
    name,
    version: opts.version ?? '1.0.0',
    modules: [{ name: `${name}-bin`, version: opts.version ?? '1.0.0', digest: digest('a'), processorType: 'any', size: 10, dependsOn: opts.dependsOn ?? [] }],
    requires: opts.requires ?? {},
    provides: opts.provides ?? [],
    consumes: opts.consumes ?? [],
  };
}

export const assignment = (nodes: string[], packages: SelectedPackage[] = [selected('app')], classId?: string): Assignment => ({
  selectionId: `sel-${packages.map((p) => p.name).join('-')}-${nodes[0]}`,
  packages,
  nodes,
  ...(classId ? { classId } : {}),
});

export const policy = (p: Record<string, unknown> = {}) => RolloutPolicy.parse({ waves: { canary: 0 }, ...p });

export function createCommand(assignments: Assignment[], p: Record<string, unknown> = {}, extra: Partial<Extract<RolloutCommand, { type: 'Create' }>> = {}): Extract<RolloutCommand, { type: 'Create' }> {
  return {
    type: 'Create',
    now: T0,
    rolloutId: 'r1',
    update: { description: 'test', targets: [{ nodes: assignments.flatMap((a) => a.nodes), packages: [{ name: 'app', version: '1.0.0' }] }] },
    policy: policy(p),
    assignments,
    unsupported: [],
    createdBy: 'alice',
    ...extra,
  };
}

export const vote = (nodeId: string, decision: 'accept' | 'veto' = 'accept', extra: Partial<VoteReport> = {}): VoteReport => ({
  nodeId,
  rolloutId: 'r1',
  attempt: 0,
  decision,
  verdicts: decision === 'veto' ? [{ processId: 'db', decision: 'veto', reason: 'PROCESS_BUSY', message: 'compacting', retryAfterMs: 60_000 } satisfies Verdict] : [{ processId: 'web', decision: 'accept' }],
  affectedProcesses: ['web'],
  dryRun: false,
  ...extra,
});

export function installed(pkg: SelectedPackage): InstalledPackage {
  return { name: pkg.name, version: pkg.version, modules: pkg.modules.map((m) => ({ name: m.name, version: m.version, digest: m.digest })), requires: pkg.requires, provides: pkg.provides, consumes: pkg.consumes };
}

export const inventory = (pkgs: SelectedPackage[] = [selected('app')]): Inventory => ({ active: pkgs.map(installed), previous: [], digest: digest('b') });

export const progress = (nodeId: string, phase: ProgressReport['phase'], extra: Partial<ProgressReport> = {}): ProgressReport => ({
  nodeId,
  rolloutId: 'r1',
  attempt: 0,
  phase,
  ...(phase === 'completed' ? { inventory: inventory() } : {}),
  ...extra,
});
