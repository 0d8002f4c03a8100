import type { PlanResult, RolloutSummary } from '@changeover/contracts';

/** Human output for rollouts: pure string builders, so they are tested without a terminal. */

const PHASE_ORDER = ['voting', 'accepted', 'committing', 'completed', 'failed', 'vetoed', 'unreachable', 'deferred', 'excluded', 'regressing', 'regressed'];

export function phaseLine(phases: Record<string, number>): string {
  const keys = Object.keys(phases).sort((a, b) => PHASE_ORDER.indexOf(a) - PHASE_ORDER.indexOf(b));
  return keys.length ? keys.map((k) => `${k} ${phases[k]}`).join(' · ') : 'no nodes';
}

export function bar(done: number, total: number, width = 30): string {
  const filled = total === 0 ? width : Math.round((done / total) * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total}`;
}

/** One line for `watch`: status, progress bar of finished nodes, phases. */
export function progressLine(s: RolloutSummary): string {
  const finished = (s.phases['completed'] ?? 0) + (s.phases['failed'] ?? 0) + (s.phases['regressed'] ?? 0);
  return `${s.rolloutId} ${s.status.padEnd(9)} ${bar(finished, s.nodes)}  ${phaseLine(s.phases)}`;
}

/** `rollout show`: everything, and for a stuck rollout who blocks it and the command to go on. */
export function renderSummary(s: RolloutSummary): string {
  const lines = [
    `rollout ${s.rolloutId}: ${s.status}${s.description ? ` — ${s.description}` : ''}`,
    `  created ${s.createdAt} by ${s.createdBy}, attempt ${s.attempt}, updated ${s.updatedAt}`,
    ...(s.traceId ? [`  trace   ${s.traceId}   (search this trace id in Jaeger)`] : []),
    `  nodes   ${s.nodes}: ${phaseLine(s.phases)}`,
    `  policy  vote ${s.policy.vote.mode === 'quorum' ? `quorum (tolerates ${s.policy.vote.toleratedVetoes})` : 'atomic'}, unreachable=${s.policy.unreachable}, canary ${s.policy.waves.canary}, waves of ${s.policy.waves.size}, error threshold ${s.policy.errorThreshold} → ${s.policy.onErrorThreshold}`,
  ];
  if (s.startAt) lines.push(`  start   ${s.startAt}${s.status === 'scheduled' ? ' (scheduled)' : ''}`);
  if (s.waitingForWindow) lines.push(`  window  waiting for class ${s.waitingForWindow.classes.join(', ')} until ${s.waitingForWindow.until}`);
  for (const w of s.waves) lines.push(`  wave ${w.wave}  ${bar(w.completed + w.failed, w.nodes, 20)} completed ${w.completed}, failed ${w.failed}`);
  if (s.forced) lines.push(`  forced by ${s.forced.by} at ${s.forced.at}: ${s.forced.reason}`);
  for (const r of s.retries ?? []) lines.push(`  retried ${r.nodes} node(s) (attempt ${r.attempt}) by ${r.by} at ${r.at}: ${r.reason}`);
  if (s.stuck) {
    lines.push('', `WHY IT IS STUCK: ${s.stuck.reason}`);
    if (s.vetoes.length) {
      lines.push('  node                 process              reason                  retry after  message');
      for (const v of s.vetoes.slice(0, 50)) lines.push(`  ${v.nodeId.padEnd(20)} ${(v.processId + (v.module ? `(${v.module})` : '')).padEnd(20)} ${v.reason.padEnd(23)} ${(v.retryAfterMs !== undefined ? `${Math.ceil(v.retryAfterMs / 1000)} s` : '-').padEnd(12)} ${v.message}`);
      if (s.vetoes.length > 50) lines.push(`  … and ${s.vetoes.length - 50} more (use --json)`);
    } else if (s.stuck.nodes.length) lines.push(`  nodes: ${s.stuck.nodes.slice(0, 20).join(', ')}${s.stuck.nodes.length > 20 ? ', …' : ''}`);
    lines.push(`  next: ${s.stuck.hint}`);
  }
  if (s.failures?.length) {
    lines.push('', 'FAILURES:');
    for (const f of s.failures.slice(0, 20)) lines.push(`  ${f.nodeId}: ${f.code} ${f.message}`);
  }
  if (s.discrepancies.length) {
    lines.push('', 'DEPENDENCY DISCREPANCIES:');
    for (const d of s.discrepancies.slice(0, 20)) lines.push(`  ${d.nodeId} ${d.package}: ${d.kind} ${d.missing} — ${d.message}`);
  }
  return lines.join('\n');
}

export function renderList(rollouts: { rolloutId: string; status: string; nodes: number; phases: Record<string, number>; createdAt: string; description: string }[]): string {
  if (rollouts.length === 0) return 'no rollouts';
  return ['ID                          STATUS     NODES  CREATED                   PHASES', ...rollouts.map((r) => `${r.rolloutId.padEnd(27)} ${r.status.padEnd(10)} ${String(r.nodes).padStart(5)}  ${r.createdAt.padEnd(25)} ${phaseLine(r.phases)}`)].join('\n');
}

export function renderPlan(p: PlanResult): string {
  const lines = [`plan ${p.planId}: ${p.wouldBlock ? 'WOULD BLOCK' : 'would go ahead'}`];
  for (const a of p.assignments) lines.push(`  ${a.classId ? `class ${a.classId}` : 'nodes'} (${a.nodes.length}): ${a.packages.map((x) => `${x.name}@${x.version} [${x.modules.join(', ')}]`).join('; ')}`);
  for (const u of p.unsupported) lines.push(`  unsupported: ${u.nodeId} has no module of ${u.package} for ${u.processorType}`);
  const vetoes = p.votes.filter((v) => v.decision === 'veto');
  lines.push(`  votes: ${p.votes.length - vetoes.length} accept, ${vetoes.length} veto, ${p.noAnswer.length} no answer`);
  for (const v of vetoes) for (const x of v.vetoes) lines.push(`  veto ${x.nodeId}/${x.processId}: ${x.reason} ${x.message}`);
  if (p.noAnswer.length) lines.push(`  no answer: ${p.noAnswer.slice(0, 20).join(', ')}`);
  return lines.join('\n');
}
