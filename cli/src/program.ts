import { readFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { Command, Option } from 'commander';
import { ChangeoverError, isChangeoverError, SignedPackage, parse, type PlanResult, type RolloutSummary } from '@changeover/contracts';
import { RestClient } from './client.js';
import { registerClusterVersion } from './cluster-version.js';
import { registerToken } from './token.js';
import { registerClassWindows } from './class-windows.js';
import { createRequest, packageRef, type CreateOptions } from './rollout/options.js';
import { progressLine, renderList, renderPlan, renderSummary } from './rollout/render.js';

export interface CliIo {
  out(text: string): void;
  err(text: string): void;
  env: Record<string, string | undefined>;
  isTty: boolean;
  sleep(ms: number): Promise<void>;
  fetch?: typeof fetch;
}

const TERMINAL = new Set(['completed', 'cancelled', 'aborted', 'failed']);
/** How long `watch` asks the rollout service to hold each request for the next change. */
const WATCH_WAIT_MS = 10_000;

/** The `changeover` command line over the REST APIs. Returns the exit code. */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  let code = 0;
  const rolloutApi = () => new RestClient(io.env['CHANGEOVER_ROLLOUT_URL'] ?? 'http://127.0.0.1:7102', io.env['CHANGEOVER_TOKEN'], io.fetch);
  const registryApi = () => new RestClient(io.env['CHANGEOVER_REGISTRY_URL'] ?? 'http://127.0.0.1:7101', io.env['CHANGEOVER_TOKEN'], io.fetch);
  const print = (json: boolean, value: unknown, human: () => string) => io.out(json ? JSON.stringify(value, null, 2) : human());
  const enc = encodeURIComponent;

  const program = new Command('changeover').description('Roll software out to fleets without breaking what runs on them').exitOverride().configureOutput({ writeOut: (s) => io.out(s.trimEnd()), writeErr: (s) => io.err(s.trimEnd()) });
  const jsonOpt = () => new Option('--json', 'machine-readable output');

  program
    .command('publish')
    .description('publish a signed package (JSON SignedPackage) with its module blobs')
    .argument('<package-file>', 'SignedPackage JSON ({manifest, signature?})')
    .option('--blob <path...>', 'module blob files (digests computed here)')
    .addOption(jsonOpt())
    .action(async (file: string, o: { blob?: string[]; json?: boolean }) => {
      const pkg = parse(SignedPackage, JSON.parse(await readFile(file, 'utf8')), 'package file');
      const blobs: Record<string, string> = {};
      for (const path of o.blob ?? []) {
        const data = await readFile(path);
        blobs[`sha256:${createHash('sha256').update(data).digest('hex')}`] = data.toString('base64');
      }
      const r = await registryApi().request<{ package: { name: string; version: string }; created: boolean; signatureVerdict: string }>('POST', '/packages', { package: pkg, blobs });
      print(!!o.json, r, () => `${r.created ? 'published' : 'already published'} ${r.package.name}@${r.package.version} (signature ${r.signatureVerdict})`);
    });

  program
    .command('nodes')
    .description('list nodes known to the registry')
    .option('--class <id>', 'only this class')
    .option('--status <status>', 'active | stale | decommissioned')
    .addOption(jsonOpt())
    .action(async (o: { class?: string; status?: string; json?: boolean }) => {
      const q = new URLSearchParams({ ...(o.class ? { classId: o.class } : {}), ...(o.status ? { status: o.status } : {}) });
      const r = await registryApi().request<{ nodes: { nodeId: string; classId: string; processorType: string; status: string; lastHeartbeatAt: string | null; agentVersion: string | null }[] }>('GET', `/nodes${q.size ? `?${q}` : ''}`);
      print(!!o.json, r, () => (r.nodes.length ? ['NODE                 CLASS           ARCH    STATUS  AGENT    LAST HEARTBEAT', ...r.nodes.map((n) => `${n.nodeId.padEnd(20)} ${n.classId.padEnd(15)} ${n.processorType.padEnd(7)} ${n.status.padEnd(7)} ${(n.agentVersion ?? '-').padEnd(8)} ${n.lastHeartbeatAt ?? '-'}`)].join('\n') : 'no nodes'));
    });

  const createFlags = (c: Command) =>
    c
      .option('-p, --package <name@version...>', 'packages to install')
      .option('-n, --node <id...>', 'target nodes')
      .option('-c, --class <id...>', 'target classes')
      .option('-f, --file <update.json>', 'a create request or software update as JSON')
      .option('--description <text>');

  createFlags(program.command('plan').description('dry run: module selection and would-be votes, nothing committed'))
    .option('--vote-timeout <ms>', 'how long to collect votes', '5000')
    .addOption(jsonOpt())
    .action(async (o: CreateOptions & { json?: boolean }) => {
      const req = createRequest(o, o.file ? JSON.parse(await readFile(o.file, 'utf8')) : undefined);
      const p = await rolloutApi().request<PlanResult>('POST', '/plans', { update: req.update, voteTimeoutMs: Number(o.voteTimeout ?? 5000) });
      print(!!o.json, p, () => renderPlan(p));
      if (p.wouldBlock) code = 3;
    });

  const rollout = program.command('rollout').description('create and steer rollouts');
  createFlags(rollout.command('create').description('start a rollout'))
    .option('--image <file.tar.gz>', 'an update image (claim 20)')
    .option('--id <rolloutId>', 'client-chosen id (idempotent create)')
    .option('--canary <n>', 'nodes in the canary wave')
    .option('--wave-size <n|pct%>', 'size of later waves')
    .option('--success-threshold <0..1>')
    .option('--error-threshold <0..1>')
    .addOption(new Option('--on-error <what>').choices(['pause', 'abort']))
    .option('--quorum <k>', 'tolerate k vetoing nodes')
    .addOption(new Option('--unreachable <what>').choices(['veto', 'defer', 'exclude']))
    .option('--vote-timeout <ms>')
    .option('--changeover-timeout <ms>')
    .option('--start-at <iso>', 'stay scheduled until this time (ISO 8601 with offset), cancellable meanwhile')
    .option('-w, --watch', 'watch it until it ends')
    .addOption(jsonOpt())
    .action(async (o: CreateOptions & { image?: string; watch?: boolean; json?: boolean }) => {
      let s: RolloutSummary;
      if (o.image) {
        const req = createRequest({ ...o, package: ['image@0.0.0'], node: ['image'] });
        const q = new URLSearchParams({ policy: JSON.stringify(req.policy), ...(o.id ? { rolloutId: o.id } : {}) });
        s = await rolloutApi().request<RolloutSummary>('POST', `/rollouts/from-image?${q}`, undefined, { file: o.image, contentType: 'application/gzip' });
      } else {
        s = await rolloutApi().request<RolloutSummary>('POST', '/rollouts', createRequest(o, o.file ? JSON.parse(await readFile(o.file, 'utf8')) : undefined));
      }
      print(!!o.json, s, () => `${s.status === 'scheduled' ? `scheduled rollout ${s.rolloutId} to start at ${s.startAt}` : 'created rollout ' + s.rolloutId} for ${s.nodes} node(s)${s.traceId ? `\ntrace id ${s.traceId}` : ''}`);
      if (o.watch) code = await watch(s.rolloutId, !!o.json);
    });

  rollout
    .command('list')
    .description('rollout history, newest first: every page, following the cursor')
    .addOption(jsonOpt())
    .option('--status <s>', 'comma-separated statuses')
    .option('--package <name[@version]>', 'rollouts of this package (and version)')
    .option('--class <id>', 'rollouts targeting this class')
    .option('--created-after <iso>', 'created at or after this time')
    .option('--created-before <iso>', 'created before this time')
    .option('--actor <name>', 'created by')
    .option('--limit <n>', 'at most n in all', '50')
    .action(async (o: { json?: boolean; limit: string; status?: string; package?: string; class?: string; createdAfter?: string; createdBefore?: string; actor?: string }) => {
      const [name, version] = o.package?.includes('@') ? [o.package.slice(0, o.package.lastIndexOf('@')), o.package.slice(o.package.lastIndexOf('@') + 1)] : [o.package, undefined];
      const filters = { status: o.status, package: name, version, class: o.class, createdAfter: o.createdAfter, createdBefore: o.createdBefore, actor: o.actor };
      const rollouts = await pages<RolloutSummary>('/rollouts', 'rollouts', filters, o.limit);
      print(!!o.json, { rollouts }, () => renderList(rollouts));
    });

  rollout
    .command('show')
    .description('state, progress, and why it is stuck')
    .argument('<id>')
    .option('--nodes', 'include every node\'s phase')
    .addOption(jsonOpt())
    .action(async (id: string, o: { json?: boolean; nodes?: boolean }) => {
      const s = await rolloutApi().request<RolloutSummary>('GET', `/rollouts/${enc(id)}${o.nodes ? '?nodes=true' : ''}`);
      print(!!o.json, s, () => renderSummary(s) + (s.nodePhases ? `\n\nNODES:\n${Object.entries(s.nodePhases).map(([n, p]) => `  ${n.padEnd(20)} ${p}`).join('\n')}` : ''));
    });

  rollout
    .command('watch')
    .description('live progress until the rollout ends (exit 0 completed, 1 failed/aborted/cancelled)')
    .argument('<id>')
    .addOption(jsonOpt())
    .action(async (id: string, o: { json?: boolean }) => {
      code = await watch(id, !!o.json);
    });

  const steer = (name: string, description: string, body: (o: Record<string, unknown>) => unknown, extra?: (c: Command) => Command) => {
    let c = rollout.command(name).description(description).argument('<id>').addOption(jsonOpt());
    if (extra) c = extra(c);
    c.action(async (id: string, o: Record<string, unknown>) => {
      const s = await rolloutApi().request<RolloutSummary>('POST', `/rollouts/${enc(id)}/${name}`, body(o));
      print(!!o['json'], s, () => `${name}: rollout ${s.rolloutId} is ${s.status}`);
    });
  };
  steer('force', 'force a blocked rollout: vetoing nodes accept (recorded with who and why)', (o) => ({ reason: o['reason'], ...(o['node'] ? { nodes: o['node'] } : {}) }), (c) => c.requiredOption('-r, --reason <text>', 'why (kept in the audit trail)').option('-n, --node <id...>', 'force only these nodes'));
  steer('cancel', 'cancel a rollout', (o) => ({ reason: o['reason'] ?? '' }), (c) => c.option('-r, --reason <text>'));
  steer('revote', 'ask the nodes to vote again', (o) => ({ reason: o['reason'] ?? '' }), (c) => c.option('-r, --reason <text>'));
  steer('pause', 'pause an applying rollout: no new waves, nodes mid-changeover finish', (o) => ({ reason: o['reason'] }), (c) => c.requiredOption('-r, --reason <text>', 'why (kept in the audit trail)'));
  steer(
    'retry',
    'commit failed or timed-out nodes again (all of them, or --node ones); a paused rollout stays paused until resumed',
    (o) => ({ reason: o['reason'], ...(o['node'] ? { nodeIds: o['node'] } : {}) }),
    (c) => c.requiredOption('-r, --reason <text>', 'why (kept in the audit trail)').option('-n, --node <id...>', 'only these nodes (each must have failed or timed out)'),
  );
  steer('resume', 'resume a paused rollout', (o) => ({ reason: o['reason'] ?? '' }), (c) => c.option('-r, --reason <text>'));
  steer(
    'regress',
    'regress the rollout (all its nodes) or some nodes to the previous or a named version',
    (o) => ({ reason: o['reason'] ?? '', ...(o['node'] ? { nodes: o['node'] } : {}), to: o['to'] ? { kind: 'version', ...packageRefAs(String(o['to'])) } : { kind: 'previous' } }),
    (c) => c.option('-n, --node <id...>', 'only these nodes').option('--to <name@version>', 'a named version instead of the previous one').option('-r, --reason <text>'),
  );

  program
    .command('audit')
    .description('operator actions: who did what to which rollout, when and why (newest first)')
    .addOption(jsonOpt())
    .option('--actor <name>', 'who acted')
    .option('--action <a>', 'comma-separated: create, force, cancel, revote, resume, regress, pause, retry, cluster-version-adjust')
    .option('--rollout <id>', 'actions on this rollout')
    .option('--since <iso>', 'at or after this time')
    .option('--until <iso>', 'before this time')
    .option('--limit <n>', 'at most n in all', '100')
    .action(async (o: { json?: boolean; actor?: string; action?: string; rollout?: string; since?: string; until?: string; limit: string }) => {
      type Entry = { at: string; actor: string; action: string; target: { kind: string; rolloutId?: string; version?: number }; reason: string; outcome: string };
      const entries = await pages<Entry>('/audit', 'entries', { actor: o.actor, action: o.action, rolloutId: o.rollout, since: o.since, until: o.until }, o.limit);
      print(!!o.json, { entries }, () => entries.map((e) => `${e.at}  ${e.actor.padEnd(16)} ${e.action.padEnd(22)} ${e.target.kind === 'rollout' ? e.target.rolloutId : `cluster v${e.target.version}`}${e.outcome === 'refused' ? ' (refused)' : ''}${e.reason ? `  ${e.reason}` : ''}`).join('\n') || 'no entries');
    });

  /** Every page of a cursor-paged list, up to `limit` entries in all. */
  async function pages<T>(path: string, key: string, filters: Record<string, string | undefined>, limitText: string): Promise<T[]> {
    const limit = Number(limitText);
    if (!Number.isInteger(limit) || limit < 1) throw new ChangeoverError('VALIDATION_FAILED', '--limit must be a positive integer');
    const out: T[] = [];
    let cursor: string | null = null;
    do {
      const q = new URLSearchParams(Object.entries(filters).filter((e): e is [string, string] => e[1] !== undefined));
      q.set('limit', String(Math.min(500, limit - out.length)));
      if (cursor) q.set('cursor', cursor);
      const page: Record<string, unknown> = await rolloutApi().request<Record<string, unknown>>('GET', `${path}?${q}`);
      out.push(...((page[key] as T[]) ?? []));
      cursor = (page['nextCursor'] as string | null | undefined) ?? null;
    } while (cursor && out.length < limit);
    return out;
  }

  registerClusterVersion(program, { api: rolloutApi, out: io.out, err: io.err, sleep: io.sleep, setCode: (c) => (code = c) });
  registerToken(program, { api: registryApi, out: io.out });
  registerClassWindows(program, { api: rolloutApi, out: io.out });

  async function watch(id: string, json: boolean): Promise<number> {
    let last = '';
    let version: number | undefined;
    for (;;) {
      // A long poll: the owning instance answers at the rollout's next change (or after WATCH_WAIT_MS).
      const s = await rolloutApi().request<RolloutSummary>('GET', `/rollouts/${enc(id)}${version === undefined ? '' : `?after=${version}&waitMs=${WATCH_WAIT_MS}`}`);
      const line = json ? JSON.stringify({ rolloutId: s.rolloutId, status: s.status, phases: s.phases, vetoes: s.vetoes.length, failures: s.failures?.length ?? 0 }) : progressLine(s);
      if (line !== last) {
        io.out(line);
        if (!json && s.stuck && s.status !== 'voting' && !last.includes(s.status)) io.out(renderSummary(s));
        last = line;
      }
      if (TERMINAL.has(s.status)) return s.status === 'completed' ? 0 : 1;
      // Unchanged: the wait ran out, or an instance that does not own the rollout answered at once.
      if (s.version === version) await io.sleep(500);
      version = s.version;
    }
  }

  try {
    await program.parseAsync(argv, { from: 'user' });
    return code;
  } catch (e) {
    if (isChangeoverError(e)) {
      io.err(`error ${e.code}: ${e.message}`);
      return e.code === 'UNAVAILABLE' ? 4 : 2;
    }
    const ce = e as { code?: string; exitCode?: number };
    if (typeof ce.exitCode === 'number') return ce.code === 'commander.helpDisplayed' || ce.code === 'commander.version' ? 0 : ce.exitCode;
    io.err(`error: ${e instanceof Error ? e.message : String(e)}`);
    return 2;
  }
}

function packageRefAs(spec: string): { package: string; version: string } {
  const r = packageRef(spec);
  if (!r.name) throw new ChangeoverError('VALIDATION_FAILED', '--to must be name@version');
  return { package: r.name, version: r.version };
}
