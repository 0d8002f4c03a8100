import type { AuditList, ClusterVersionStatus, CreateRolloutRequest, FleetPage, RolloutList, RolloutSummary, WhoAmI } from '@changeover/contracts';
import { api, ApiError, may, query } from './api.js';
import { h, show, status, table, when } from './dom.js';

const errorBox = (e: unknown) => h('div', { class: 'error', id: 'error' }, e instanceof ApiError ? `${e.code}: ${e.message}` : String(e));
const field = (label: string, input: HTMLElement) => h('label', {}, label, input);
const input = (name: string, value = '', placeholder = '') => h('input', { name, id: `f-${name}`, value, placeholder });
const values = (form: HTMLFormElement) => Object.fromEntries([...new FormData(form)].map(([k, v]) => [k, String(v).trim() || undefined])) as Record<string, string | undefined>;

/** A filter form over a paged list: submitting starts again at the first page, "More" follows the cursor. */
function pagedList<P extends { nextCursor: string | null }>(root: HTMLElement, title: string, fields: HTMLElement[], load: (q: Record<string, string | undefined>) => Promise<P>, rows: (page: P) => HTMLElement, extra: HTMLElement[] = []): void {
  const form = h('form', { class: 'filters', id: 'filters' }, ...fields, h('button', { type: 'submit', class: 'primary' }, 'Filter'));
  const out = h('div', { id: 'list' });
  const more = h('div');
  show(root, h('h1', {}, title), ...extra, form, out, more);
  const run = async (cursor?: string) => {
    try {
      const page = await load({ ...values(form), ...(cursor ? { cursor } : {}) });
      if (!cursor) show(out);
      out.append(rows(page));
      show(more, page.nextCursor ? h('button', { id: 'more', onclick: () => void run(page.nextCursor!) }, 'More') : '');
    } catch (e) {
      show(out, errorBox(e));
    }
  };
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    void run();
  });
  void run();
}

/** Nodes by class, status, agent version and package, with a search on the node id. */
export function fleetPage(root: HTMLElement): void {
  const statusSelect = h('select', { name: 'status', id: 'f-status' }, ...['', 'active', 'stale', 'decommissioned'].map((s) => h('option', { value: s }, s || 'any')));
  pagedList<FleetPage>(
    root,
    'Fleet',
    [field('search node id', input('search')), field('class', input('class')), field('status', statusSelect), field('agent version', input('agentVersion')), field('package', input('package', '', 'name or name@version'))],
    (q) => api('GET', `/fleet${query(q)}`),
    (page) => {
      const byClass = new Map<string, number>();
      for (const n of page.nodes) byClass.set(n.classId, (byClass.get(n.classId) ?? 0) + 1);
      return h(
        'div',
        {},
        h('p', { class: 'muted' }, `${page.nodes.length} node(s) on this page${byClass.size ? ` — ${[...byClass].map(([c, n]) => `${c}: ${n}`).join(', ')}` : ''}`),
        table(
          ['node', 'class', 'status', 'agent', 'cluster versions', 'processor', 'active packages', 'last heartbeat'],
          [...page.nodes].sort((a, b) => a.classId.localeCompare(b.classId) || a.nodeId.localeCompare(b.nodeId)).map((n) => [n.nodeId, n.classId, status(n.status), n.agentVersion ?? '—', n.clusterVersions ? `${n.clusterVersions.min}-${n.clusterVersions.max}` : '—', n.processorType, n.packages.join(', ') || '—', when(n.lastHeartbeatAt)]),
          { class: 'fleet' },
        ),
      );
    },
  );
}

/** Rollout history with its filters. */
export function rolloutsPage(root: HTMLElement, me: WhoAmI | null): void {
  const create = may(me, 'operator') ? h('a', { href: '#/rollouts/new', id: 'new-rollout' }, 'New rollout') : h('span', { class: 'muted' }, 'creating a rollout needs the operator role');
  pagedList<RolloutList>(
    root,
    'Rollouts',
    [field('status', input('status', '', 'blocked,applying')), field('package', input('package')), field('version', input('version')), field('class', input('class')), field('actor', input('actor')), field('created after', input('createdAfter', '', 'ISO time')), field('created before', input('createdBefore', '', 'ISO time'))],
    (q) => api('GET', `/rollouts${query(q)}`),
    (page) =>
      table(
        ['rollout', 'status', 'description', 'nodes', 'phases', 'by', 'created'],
        page.rollouts.map((r) => [h('a', { href: `#/rollouts/${encodeURIComponent(r.rolloutId)}`, class: 'rollout-link' }, r.rolloutId), status(r.status), r.description, r.nodes, Object.entries(r.phases).map(([p, n]) => `${p} ${n}`).join(', '), r.createdBy ?? '—', when(r.createdAt)]),
        { class: 'rollouts' },
      ),
    [h('p', {}, create)],
  );
}

const list = (s: string | undefined) => (s ?? '').split(',').map((x) => x.trim()).filter(Boolean);

/** A rollout from packages and targets (operator). */
export function newRolloutPage(root: HTMLElement, go: (hash: string) => void): void {
  const policy = h('textarea', { name: 'policy', id: 'f-policy' }, JSON.stringify({ waves: { canary: 1, size: '100%', successThreshold: 1 } }, null, 2));
  const message = h('div');
  const form = h(
    'form',
    { id: 'create' },
    h('div', { class: 'filters' }, field('description', input('description')), field('packages', input('packages', '', 'name@version, …')), field('classes', input('classes', '', 'web, edge')), field('nodes', input('nodes', '', 'node-1, …'))),
    field('policy (JSON)', policy),
    h('p', {}, h('button', { type: 'submit', class: 'primary', id: 'create-submit' }, 'Create rollout')),
  );
  show(root, h('h1', {}, 'New rollout'), message, form);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    void (async () => {
      try {
        const v = values(form);
        const packages = list(v['packages']).map((p) => ({ name: p.slice(0, p.indexOf('@')), version: p.slice(p.indexOf('@') + 1) }));
        const classes = list(v['classes']);
        const nodes = list(v['nodes']);
        const req = { update: { description: v['description'] ?? '', targets: [{ ...(classes.length ? { classes } : {}), ...(nodes.length ? { nodes } : {}), packages }] }, policy: JSON.parse(policy.value || '{}') as unknown } as CreateRolloutRequest;
        const s = await api<RolloutSummary>('POST', '/rollouts', req);
        go(`#/rollouts/${encodeURIComponent(s.rolloutId)}`);
      } catch (err) {
        show(message, errorBox(err));
      }
    })();
  });
}

/** The checks before an adjustment (DESIGN §6), by the code a failed one blocks with. */
const GATES = [
  ['NODE_NOT_ACTIVE', 'every registered node is active'],
  ['GROUP_PARTITIONED', 'no group is partitioned'],
  ['NODE_INCAPABLE', 'every node can run the candidate version'],
] as const;

/** Cluster infrastructure version: agent versions per node, gates and what blocks them, adjustment progress. */
export async function clusterPage(root: HTMLElement, version?: string): Promise<void> {
  show(root, h('h1', {}, 'Cluster version'), h('p', { class: 'muted' }, 'loading…'));
  // The gates checked for another version than the default candidate.
  const check = h('form', { class: 'filters', id: 'check' }, field('check version', input('version', version ?? '', 'e.g. 2')), h('button', { type: 'submit', class: 'primary' }, 'Check'));
  check.addEventListener('submit', (e) => {
    e.preventDefault();
    void clusterPage(root, values(check)['version']);
  });
  try {
    const c = await api<ClusterVersionStatus>('GET', `/cluster-version${query({ version })}`);
    const a = c.adjustment;
    show(
      root,
      h('h1', {}, 'Cluster version'),
      check,
      h('div', { class: 'panel', id: 'cluster' }, h('p', {}, `active version ${c.activeVersion}; candidate ${c.candidateVersion ?? '—'}; `, c.ready ? status('ready') : status(c.candidateVersion === null ? 'nothing-to-adjust' : 'blocked')), a && h('p', {}, `last adjustment to ${a.version}: `, status(a.state), ` by ${a.by}, ${a.acknowledged}/${a.total} acknowledged, ${when(a.startedAt)}`)),
      h('h2', {}, 'Gates'),
      table(['gate', 'state'], GATES.map(([code, text]) => {
        const n = c.blockers.filter((b) => b.code === code).length;
        return [text, c.candidateVersion === null || c.adjustment?.state === 'adjusting' ? h('span', { class: 'muted' }, 'not checked') : n ? h('span', {}, status('blocked'), ` ${n} blocker${n === 1 ? '' : 's'}`) : status('passed')];
      }), { id: 'gates' }),
      h('h2', {}, 'Blocking reasons'),
      c.blockers.length ? table(['gate', 'node', 'group', 'message'], c.blockers.map((b) => [b.code, b.nodeId ?? '—', b.groupId ?? '—', b.message]), { id: 'blockers' }) : h('p', { class: 'muted', id: 'blockers' }, 'none'),
      h('h2', {}, 'Agent versions per node'),
      table(['node', 'status', 'agent', 'cluster versions'], c.nodes.map((n) => [n.nodeId, status(n.status), n.agentVersion ?? '—', n.clusterVersions ? `${n.clusterVersions.min}-${n.clusterVersions.max}` : '—']), { id: 'cluster-nodes' }),
      h('h2', {}, 'Groups'),
      c.groups.length ? table(['group', 'version', 'last sequence', 'members'], c.groups.map((g) => [g.groupId, g.activeVersion, g.lastSequence, g.members.map((m) => `${m.memberId}@${m.nodeId}`).join(', ')])) : h('p', { class: 'muted' }, 'no groups'),
    );
  } catch (e) {
    show(root, h('h1', {}, 'Cluster version'), check, errorBox(e));
  }
}

/** Operator actions (operator role). */
export function auditPage(root: HTMLElement, me: WhoAmI | null): void {
  if (!may(me, 'operator')) return show(root, h('h1', {}, 'Audit'), h('p', { class: 'muted' }, 'the audit trail needs the operator role'));
  pagedList<AuditList>(
    root,
    'Audit',
    [field('actor', input('actor')), field('action', input('action', '', 'force,cancel')), field('rollout', input('rolloutId')), field('since', input('since', '', 'ISO time')), field('until', input('until', '', 'ISO time'))],
    (q) => api('GET', `/audit${query(q)}`),
    (page) => table(['when', 'action', 'actor', 'role', 'target', 'reason', 'outcome'], page.entries.map((e) => [when(e.at), e.action, e.actor, e.actorRole ?? '—', e.target.kind === 'rollout' ? h('a', { href: `#/rollouts/${encodeURIComponent(e.target.rolloutId)}` }, e.target.rolloutId) : `cluster version ${e.target.version}`, e.reason || '—', e.outcome]), { class: 'audit' }),
  );
}
