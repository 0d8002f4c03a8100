import { Option, type Command } from 'commander';
import { isChangeoverError, type AdjustClusterVersionReply, type ClusterVersionStatus } from '@changeover/contracts';
import type { RestClient } from './client.js';

type Blocker = ClusterVersionStatus['blockers'][number];

/** What each refusal means, printed under it. */
const MEANING: Record<Blocker['code'], string> = {
  NODE_NOT_ACTIVE: 'a registered node sent no recent heartbeat: bring its agent back (only a decommissioned node does not count)',
  GROUP_PARTITIONED: 'members of a group did not all answer the validate round with the same view of its log',
  NODE_INCAPABLE: 'a node\'s agent cannot run the target version: upgrade its agent first',
};

export function renderBlockers(blockers: Blocker[]): string {
  const codes = [...new Set(blockers.map((b) => b.code))];
  return codes.map((c) => [`${c} — ${MEANING[c]}`, ...blockers.filter((b) => b.code === c).map((b) => `  • ${b.message}`)].join('\n')).join('\n');
}

export function renderStatus(s: ClusterVersionStatus): string {
  const lines = [`cluster version ${s.activeVersion}`];
  if (s.adjustment) {
    const a = s.adjustment;
    lines.push(a.state === 'adjusting' ? `adjusting to ${a.version} (${a.adjustmentId}, by ${a.by}): ${a.acknowledged}/${a.total} members acknowledged` : `last adjustment ${a.adjustmentId || '-'} to ${a.version}: ${a.state} at ${a.finishedAt ?? '-'}`);
  }
  lines.push(s.candidateVersion === null ? 'nothing to adjust: no version above the active one is runnable by every node' : s.ready ? `ready to adjust to ${s.candidateVersion}` : `not ready to adjust to ${s.candidateVersion}${s.blockers.length ? ':' : ''}`);
  if (s.blockers.length) lines.push(renderBlockers(s.blockers));
  lines.push('', 'NODE                 STATUS  AGENT     VERSIONS');
  for (const n of s.nodes) lines.push(`${n.nodeId.padEnd(20)} ${n.status.padEnd(7)} ${(n.agentVersion ?? '-').padEnd(9)} ${n.clusterVersions ? `${n.clusterVersions.min}-${n.clusterVersions.max}` : '-'}`);
  lines.push('', 'GROUP                VERSION  MEMBERS');
  for (const g of s.groups) lines.push(`${g.groupId.padEnd(20)} ${String(g.activeVersion).padEnd(8)} ${g.members.map((m) => `${m.memberId}@${m.nodeId}`).join(', ') || '-'}`);
  return lines.join('\n');
}

/** `changeover cluster-version status | adjust <v> [--dry-run] [--wait]`. */
export function registerClusterVersion(program: Command, deps: { api: () => RestClient; out(text: string): void; err(text: string): void; sleep(ms: number): Promise<void>; setCode(code: number): void }): void {
  const cv = program.command('cluster-version').description('the cluster infrastructure version of every group: status and adjust');
  const json = () => new Option('--json', 'machine-readable output');

  cv.command('status')
    .description('nodes (agent version, range), groups (version, members), readiness and blockers, adjustment progress')
    .option('--version <n>', 'check readiness for this version (default: the highest every node can run)')
    .addOption(json())
    .action(async (o: { version?: string; json?: boolean }) => {
      const s = await deps.api().request<ClusterVersionStatus>('GET', `/cluster-version${o.version ? `?version=${encodeURIComponent(o.version)}` : ''}`);
      deps.out(o.json ? JSON.stringify(s, null, 2) : renderStatus(s));
    });

  cv.command('adjust')
    .description('move every group to cluster version <version> once every node is active and capable and no group is partitioned')
    .argument('<version>', 'the target cluster version')
    .option('--dry-run', 'only run the checks; change nothing')
    .option('-w, --wait', 'wait until every member has acknowledged')
    .option('-r, --reason <text>', 'why (kept in the audit trail)')
    .addOption(json())
    .action(async (v: string, o: { dryRun?: boolean; wait?: boolean; json?: boolean; reason?: string }) => {
      const version = Number(v);
      if (!Number.isInteger(version) || version < 1) {
        deps.err('error VALIDATION_FAILED: <version> must be a positive integer');
        return deps.setCode(2);
      }
      let r: AdjustClusterVersionReply;
      try {
        r = await deps.api().request<AdjustClusterVersionReply>('POST', '/cluster-version/adjust', { version, dryRun: !!o.dryRun, ...(o.reason ? { reason: o.reason } : {}) });
      } catch (e) {
        const blockers = isChangeoverError(e) ? (e.details?.['blockers'] as Blocker[] | undefined) : undefined;
        if (!blockers?.length) throw e;
        deps.err(o.json ? JSON.stringify({ code: (e as { code: string }).code, blockers }, null, 2) : `refused: cluster version ${version} cannot be adjusted now\n${renderBlockers(blockers)}`);
        return deps.setCode(3);
      }
      if (o.json && !o.wait) return deps.out(JSON.stringify(r, null, 2));
      if (r.dryRun) {
        deps.out(r.accepted ? `dry run: version ${version} would be adjusted on ${r.groups} group(s); nothing changed` : `dry run: version ${version} would be refused; nothing changed\n${renderBlockers(r.blockers)}`);
        return deps.setCode(r.accepted ? 0 : 3);
      }
      deps.out(`adjusting to version ${version} (${r.adjustmentId}) on ${r.groups} group(s)`);
      if (!o.wait) return;
      let last = '';
      for (;;) {
        const s = await deps.api().request<ClusterVersionStatus>('GET', '/cluster-version');
        const a = s.adjustment;
        const line = a ? `${a.state}: ${a.acknowledged}/${a.total} members acknowledged` : 'no adjustment';
        if (line !== last) deps.out(o.json ? JSON.stringify(a) : line);
        last = line;
        if (a?.adjustmentId === r.adjustmentId && a.state !== 'adjusting') return deps.setCode(a.state === 'adjusted' ? 0 : 1);
        await deps.sleep(500);
      }
    });
}
