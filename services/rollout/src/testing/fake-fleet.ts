import type { NatsConnection } from '@nats-io/transport-node';
import { serveRpc, type RpcServer } from '@changeover/messaging';
import { ChangeoverError, CommitCommand, decode, encode, GetPackagesRequest, ListNodesReply, ListNodesRequest, ProposeCommand, RegressCommand, SelectModulesRequest, subjects, type NodeRecord, type PackageManifest, type SelectedPackage, type SignedPackage } from '@changeover/contracts';
import { digest } from './fixtures.js';

export interface FakeNode {
  id: string;
  classId: string;
  arch: 'x86_64' | 'arm64';
}

/** A package whose one module exists for the given processor type. */
export function manifest(name: string, version = '1.0.0', opts: { processorType?: 'x86_64' | 'arm64' | 'any'; provides?: string[]; consumes?: string[] } = {}): SignedPackage {
  const m: PackageManifest = {
    name,
    version,
    description: '',
    modules: [{ name: `${name}-bin`, version, processorType: opts.processorType ?? 'any', size: 10, digest: digest('c'), dependsOn: [], requires: {} }],
    requires: {},
    provides: opts.provides ?? [],
    consumes: opts.consumes ?? [],
  };
  return { manifest: m };
}

/** A stand-in for the registry's request/reply subjects: module selection per processor type. */
export function fakeRegistry(nc: NatsConnection, nodes: FakeNode[], packages: SignedPackage[]): RpcServer[] {
  const find = (name: string, version: string) => packages.find((p) => p.manifest.name === name && p.manifest.version === version);
  return [
    serveRpc(nc, subjects.registry('select-modules'), SelectModulesRequest, (req) => {
      for (const p of req.packages) if (!find(p.name, p.version)) throw new ChangeoverError('NOT_FOUND', `unknown package ${p.name}@${p.version}`);
      const known = new Map(nodes.map((n) => [n.id, n]));
      const targets = [...req.nodes.map((id) => known.get(id)).filter((n): n is FakeNode => !!n), ...nodes.filter((n) => req.classes.includes(n.classId))];
      const groups = new Map<string, { packages: SelectedPackage[]; nodes: string[]; classId?: string }>();
      const unsupported: { nodeId: string; package: string; processorType: 'x86_64' | 'arm64'; reason: string }[] = [];
      for (const n of targets) {
        const selected: SelectedPackage[] = [];
        for (const ref of req.packages) {
          const m = find(ref.name, ref.version)!.manifest;
          const modules = m.modules.filter((x) => x.processorType === 'any' || x.processorType === n.arch).map(({ name, version, digest: d, processorType, size, dependsOn }) => ({ name, version, digest: d, processorType, size, dependsOn }));
          if (modules.length === 0) unsupported.push({ nodeId: n.id, package: m.name, processorType: n.arch, reason: 'no module' });
          else selected.push({ name: m.name, version: m.version, modules, requires: m.requires, provides: m.provides, consumes: m.consumes });
        }
        if (selected.length === 0) continue;
        const key = `${n.classId}|${JSON.stringify(selected)}`;
        if (!groups.has(key)) groups.set(key, { packages: selected, nodes: [] });
        groups.get(key)!.nodes.push(n.id);
      }
      const assignments = [...groups].map(([key, g], i) => {
        const classId = key.slice(0, key.indexOf('|'));
        const whole = req.classes.includes(classId) && nodes.filter((n) => n.classId === classId).length === g.nodes.length;
        return { selectionId: `s${i}`, packages: g.packages, nodes: g.nodes, ...(whole ? { classId } : {}) };
      });
      return { assignments, unsupported, unknownNodes: req.nodes.filter((id) => !known.has(id)) };
    }),
    serveRpc(nc, subjects.registry('get-packages'), GetPackagesRequest, (req) => ({ packages: req.packages.map((r) => find(r.name, r.version)!) })),
  ];
}

export interface AgentBehaviour {
  /** node → process id that vetoes. */
  veto?: Map<string, string>;
  /** Nodes whose changeover fails. */
  fail?: Set<string>;
  /** Nodes that never answer. */
  silent?: Set<string>;
  /** Nodes that take a commit and finish it only when the test calls `release(nodeId)` (a node mid-changeover). */
  hold?: Set<string>;
  /** Nodes whose first changeover fails; a later attempt succeeds. */
  failFirst?: Set<string>;
  /** Nodes that say nothing to their first commit (it times out); a later attempt succeeds. */
  stallFirst?: Set<string>;
}

/** Agents played in a few lines: they vote, change over, regress, and keep their own record of commits. */
export function fakeAgents(nc: NatsConnection, nodes: FakeNode[], behaviour: AgentBehaviour = {}) {
  const commits = new Map<string, number>(); // node → changeovers done (repeats of the same rollout+attempt answered from the record)
  const done = new Set<string>();
  const regressions: string[] = [];
  const proposals: string[] = [];
  const held = new Map<string, () => void>();
  const byClass = (classId: string) => nodes.filter((n) => n.classId === classId);
  const targetsOf = (subject: string) => {
    const [, kind, id] = subject.split('.');
    return kind === 'class' ? byClass(id!) : nodes.filter((n) => n.id === id);
  };
  const report = (nodeId: string, kind: 'vote' | 'progress', body: unknown) => nc.publish(subjects.agent(nodeId, kind), encode(body));
  const subs = [
    nc.subscribe('changeover.*.*.propose', {
      callback: (_e, msg) => {
        const cmd = decode(ProposeCommand, msg.data);
        for (const n of targetsOf(msg.subject)) {
          if (behaviour.silent?.has(n.id)) continue;
          proposals.push(n.id);
          const vetoer = behaviour.veto?.get(n.id);
          const verdicts = vetoer && !cmd.forced ? [{ processId: vetoer, decision: 'veto' as const, reason: 'PROCESS_BUSY' as const, message: 'busy', retryAfterMs: 5000 }] : [{ processId: 'web', decision: 'accept' as const }];
          report(n.id, 'vote', { nodeId: n.id, rolloutId: cmd.rolloutId, attempt: cmd.attempt, decision: vetoer && !cmd.forced ? 'veto' : 'accept', verdicts, affectedProcesses: ['web'], dryRun: cmd.dryRun });
        }
      },
    }),
    nc.subscribe('changeover.*.*.commit', {
      callback: (_e, msg) => {
        const cmd = decode(CommitCommand, msg.data);
        for (const n of targetsOf(msg.subject)) {
          if (behaviour.silent?.has(n.id)) continue;
          const key = `${n.id}/${cmd.rolloutId}/${cmd.attempt}`;
          if (!done.has(key)) {
            done.add(key);
            commits.set(n.id, (commits.get(n.id) ?? 0) + 1);
          }
          const first = commits.get(n.id) === 1;
          if (first && behaviour.stallFirst?.has(n.id)) continue;
          if (behaviour.fail?.has(n.id) || (first && behaviour.failFirst?.has(n.id))) {
            report(n.id, 'progress', { nodeId: n.id, rolloutId: cmd.rolloutId, attempt: cmd.attempt, phase: 'failed', error: { code: 'HEALTH_CHECK', message: 'unhealthy' } });
            continue;
          }
          const active = cmd.packages.map((p) => ({ name: p.manifest.name, version: p.manifest.version, modules: p.manifest.modules.map((m) => ({ name: m.name, version: m.version, digest: m.digest })), requires: p.manifest.requires, provides: p.manifest.provides, consumes: p.manifest.consumes }));
          report(n.id, 'progress', { nodeId: n.id, rolloutId: cmd.rolloutId, attempt: cmd.attempt, phase: 'fetching' });
          const finish = () => report(n.id, 'progress', { nodeId: n.id, rolloutId: cmd.rolloutId, attempt: cmd.attempt, phase: 'completed', inventory: { active, previous: [], digest: digest('d') } });
          if (behaviour.hold?.has(n.id)) held.set(n.id, finish);
          else finish();
        }
      },
    }),
    nc.subscribe('changeover.*.*.regress', {
      callback: (_e, msg) => {
        const cmd = decode(RegressCommand, msg.data);
        for (const n of targetsOf(msg.subject)) {
          regressions.push(n.id);
          report(n.id, 'progress', { nodeId: n.id, rolloutId: cmd.rolloutId, attempt: cmd.attempt, phase: 'regressed' });
        }
      },
    }),
  ];
  return {
    commits,
    /** Commit attempts each node was sent, in order (repeats of one attempt once). */
    attempts: () => [...done].map((k) => k.split('/')).reduce((m, [node, , attempt]) => m.set(node!, [...(m.get(node!) ?? []), Number(attempt)]), new Map<string, number[]>()),
    /** Whether a held node has a commit waiting; `release` finishes it. */
    holding: (nodeId: string) => held.has(nodeId),
    release(nodeId: string) {
      const finish = held.get(nodeId);
      held.delete(nodeId);
      finish?.();
    },
    regressions,
    proposals,
    hello(nodeId: string) {
      const n = nodes.find((x) => x.id === nodeId)!;
      nc.publish(subjects.agent(nodeId, 'hello'), encode({ nodeId, classId: n.classId, processorType: n.arch, characteristics: { arch: n.arch, os: 'linux', memoryMb: 1024, labels: {} }, agentVersion: '1.0.0', clusterVersions: { min: 1, max: 1 }, inventory: { active: [], previous: [], digest: digest('e') }, startedAt: new Date().toISOString() }));
    },
    stop: () => subs.forEach((s) => s.unsubscribe()),
  };
}

/** The registry's `list-nodes` over `records` as the registry pages it: node id order, class and status filters, `after`, `next`. */
export function fakeNodeDirectory(nc: NatsConnection, records: NodeRecord[]): RpcServer & { requests: number } {
  const sorted = [...records].sort((a, b) => (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0));
  const server = serveRpc(nc, subjects.registry('list-nodes'), ListNodesRequest, (req) => {
    served.requests++;
    const matching = sorted.filter((n) => (!req.classId || n.classId === req.classId) && (!req.status || n.status === req.status) && (!req.after || n.nodeId > req.after));
    const page = matching.slice(0, req.limit);
    return { nodes: page, next: matching.length > req.limit ? page.at(-1)!.nodeId : null };
  }, { resultSchema: ListNodesReply });
  const served = Object.assign(server, { requests: 0 });
  return served;
}
