import type { RolloutStreamEntry, RolloutSummary, WhoAmI } from '@changeover/contracts';
import { api, ApiError, may } from './api.js';
import { h, show, status, table, when } from './dom.js';
import { followRollout } from './stream.js';

const TERMINAL = ['completed', 'cancelled', 'aborted', 'failed'];

/** Set through the CSSOM: the page's policy allows no inline style attribute. */
function progressBar(percent: number): HTMLElement {
  const fill = h('span');
  fill.style.width = `${percent}%`;
  return h('div', { class: 'bar' }, fill);
}

/** The live rollout page: phases, waves, vetoes node → process → reason, the actions the caller's role allows. */
export function rolloutPage(root: HTMLElement, id: string, me: WhoAmI | null, signal: AbortSignal): void {
  const live = h('span', { id: 'live', class: 'muted' }, 'connecting…');
  const message = h('div', { id: 'message' });
  const body = h('div', { id: 'rollout' });
  const timeline = h('ol', { class: 'timeline', id: 'timeline' });
  const reason = h('input', { id: 'reason', placeholder: 'reason (recorded in the audit trail)', size: 50 });
  const actions = h('div', { class: 'actions', id: 'actions' });
  show(root, h('h1', {}, 'Rollout ', h('code', {}, id), ' ', live), message, h('div', { class: 'panel' }, reason, actions), body, h('h2', {}, 'Events'), timeline);
  let current: RolloutSummary | null = null;

  const act = async (path: string, payload: Record<string, unknown>, needsReason: boolean) => {
    const why = reason.value.trim();
    if (needsReason && !why) return show(message, h('div', { class: 'error' }, 'give a reason first'));
    try {
      const s = await api<RolloutSummary>('POST', `/rollouts/${encodeURIComponent(id)}/${path}`, { ...payload, ...(why ? { reason: why } : {}) });
      show(message, h('div', { class: 'muted', id: 'action-result' }, `${path}: ${s.status}`));
      render(s);
    } catch (e) {
      show(message, h('div', { class: 'error', id: 'action-error' }, e instanceof ApiError ? `${e.code}: ${e.message}` : String(e)));
    }
  };

  /** A button for an action: enabled when the rollout's status allows it and the role does; else disabled, saying why. */
  const button = (label: string, role: 'operator' | 'admin', applies: boolean, run: () => void, kind = '') => {
    const allowed = may(me, role);
    return h('button', { id: `action-${label.toLowerCase()}`, class: kind, disabled: !allowed || !applies, title: allowed ? (applies ? label : `not while ${current?.status}`) : `needs the ${role} role`, onclick: run }, label);
  };

  function render(s: RolloutSummary): void {
    if (current && s.version < current.version) return;
    current = s;
    const done = s.phases['completed'] ?? 0;
    show(
      actions,
      button('Force', 'admin', s.status === 'blocked', () => void act('force', {}, true), 'danger'),
      button('Revote', 'operator', s.status === 'blocked', () => void act('revote', {}, false)),
      button('Pause', 'operator', s.status === 'applying', () => void act('pause', {}, true)),
      button('Resume', 'operator', s.status === 'paused', () => void act('resume', {}, false)),
      button('Cancel', 'operator', !TERMINAL.includes(s.status), () => void act('cancel', {}, false)),
    );
    const byNode = new Map<string, RolloutSummary['vetoes']>();
    for (const v of s.vetoes) byNode.set(v.nodeId, [...(byNode.get(v.nodeId) ?? []), v]);
    show(
      body,
      h(
        'div',
        { class: 'panel' },
        h('p', {}, status(s.status), ' ', s.description, h('span', { class: 'muted' }, ` — version ${s.version}, attempt ${s.attempt}, by ${s.createdBy}, ${when(s.createdAt)}`)),
        h('div', { id: 'progress' }, progressBar(s.nodes ? (100 * done) / s.nodes : 0), `${done} of ${s.nodes} nodes completed`),
        s.stuck && h('p', { id: 'stuck' }, h('strong', {}, 'Waiting: '), s.stuck.reason),
        s.forced && h('p', { id: 'forced' }, `Forced by ${s.forced.by}: ${s.forced.reason} (${when(s.forced.at)})`),
        s.traceId && h('p', { class: 'muted' }, `trace ${s.traceId}`),
      ),
      h('h2', {}, 'Phases'),
      table(['phase', 'nodes'], Object.entries(s.phases).map(([p, n]) => [p, n]), { id: 'phases' }),
      h('h2', {}, 'Waves'),
      s.waves.length ? table(['wave', 'nodes', 'completed', 'failed', 'started'], s.waves.map((w) => [w.wave, w.nodes, w.completed, w.failed, when(w.startedAt)]), { id: 'waves' }) : h('p', { class: 'muted' }, 'no wave started yet'),
      s.vetoes.length > 0 && h('h2', {}, 'Vetoes'),
      ...[...byNode].map(([nodeId, vs]) =>
        h(
          'details',
          { class: 'veto-node', 'data-node': nodeId },
          h('summary', {}, `node ${nodeId} — ${vs.length} process${vs.length === 1 ? '' : 'es'} vetoed`),
          ...vs.map((v) =>
            h(
              'details',
              { class: 'veto-process', 'data-process': v.processId },
              h('summary', {}, `process ${v.processId}${v.module ? ` (module ${v.module})` : ''}`),
              h('p', { class: 'veto-reason' }, h('strong', {}, v.reason), `: ${v.message.trim()}`, v.retryAfterMs ? ` (retry after ${Math.ceil(v.retryAfterMs / 1000)} s)` : ''),
            ),
          ),
        ),
      ),
      (s.failures?.length ?? 0) > 0 && h('h2', {}, 'Failed nodes'),
      (s.failures?.length ?? 0) > 0 &&
        table(['node', 'code', 'message', ''], (s.failures ?? []).map((f) => [f.nodeId, f.code, f.message, button('Retry', 'operator', s.status !== 'completed' && s.status !== 'cancelled', () => void act(`nodes/${encodeURIComponent(f.nodeId)}/retry`, {}, false))]), { id: 'failures' }),
      s.discrepancies.length > 0 && h('h2', {}, 'Dependency discrepancies'),
      s.discrepancies.length > 0 && table(['node', 'kind', 'package', 'missing', 'message'], s.discrepancies.map((d) => [d.nodeId, d.kind, d.package, d.missing, d.message])),
    );
  }

  const addEvent = (e: RolloutStreamEntry) => timeline.append(h('li', { value: e.position, 'data-type': e.type }, `${when(e.at)}  ${e.type}${e.actor ? `  (${e.actor})` : ''}`));
  void followRollout(id, { summary: render, event: addEvent, state: (st, detail) => show(live, h('span', { 'data-state': st }, st), detail ? ` — ${detail}` : '') }, signal);
}
