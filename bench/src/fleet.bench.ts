import { spawn, type ChildProcess } from 'node:child_process';
import { openSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHash, randomBytes } from 'node:crypto';
import pg from 'pg';
import { createTestDatabase, freePort, startNats, waitFor } from '@changeover/test-kit';
import { measureFloor, type FloorResult } from './fleet-floor.js';

// `npm run bench:fleet -- --nodes N [--runs K] [--json]`: full rollouts over N simulated nodes (in a
// separate process), propose → vote → commit → changeover → report → dependency check, and in
// the same run the floor: the same NATS round trips and event inserts with none of our code. After a
// warm-up pair, K rollouts (3 by default up to 20,000 nodes) are each paired with a floor taken right
// after them, and the median pair's ratio is reported, so one slow moment of a shared machine does
// not decide it.

const args = process.argv.slice(2);
const flag = (name: string) => args.includes(`--${name}`);
const value = (name: string, fallback: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? args[i + 1]! : fallback;
};
const nodes = Number(value('nodes', '10000'));
if (!Number.isInteger(nodes) || nodes < 1 || nodes > 200_000) throw new Error('--nodes must be an integer from 1 to 200000');
const json = flag('json');
/** `--runs K`: K rollouts (each to a new version) and K floor measurements; the figures are their medians. */
const runs = Number(value('runs', nodes > 20_000 ? '1' : '3'));
if (!Number.isInteger(runs) || runs < 1 || runs > 9) throw new Error('--runs must be an integer from 1 to 9');
/** `--cpu-prof-dir DIR`: every service and the fleet write a V8 CPU profile there when they stop. */
const cpuProfDir = value('cpu-prof-dir', '');
const say = (msg: string) => {
  if (!json) process.stderr.write(`${msg}\n`);
};

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const children: ChildProcess[] = [];
/** The bootstrap admin token the services are started with; every REST call sends it. */
const adminToken = randomBytes(32).toString('hex');

/**
 * The services start with the V8 flag deploy/docker/start.sh gives them (32 MB young-generation
 * semi-spaces); the simulated fleet, which stands in for N machines' agents in one process, gets it too.
 */
const NODE_FLAGS = ['--max-semi-space-size=32'];

function start(name: string, pkg: string, argv: string[], env: Record<string, string>): ChildProcess {
  const out = openSync(join(tmpdir(), `changeover-bench-${name}.log`), 'w');
  const profile = cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${resolve(cpuProfDir)}`, `--cpu-prof-name=${name}.cpuprofile`] : [];
  const child = spawn(process.execPath, [...NODE_FLAGS, ...profile, join(root, pkg, 'dist/main.js'), ...argv], { env: { ...process.env, ...env }, stdio: ['ignore', out, out] });
  children.push(child);
  return child;
}

async function http<T>(method: string, url: string, body?: unknown): Promise<T> {
  const res = await fetch(url, { method, headers: { authorization: `Bearer ${adminToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(120_000) });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${url} → ${res.status} ${text.slice(0, 300)}`);
  return JSON.parse(text) as T;
}

/**
 * CPU time (user + system, ms) of the processes the rollout runs on, by role: our services, the
 * private nats-server, and the Postgres backends connected to the bench database (their titles name
 * it) plus the server's own background processes. Other work on the machine is not counted.
 */
type CpuSample = Map<number, { role: string; ms: number }>;
async function sampleCpu(roles: Map<number, string>, database: string): Promise<CpuSample> {
  const tick = 100; // USER_HZ on Linux
  const out: CpuSample = new Map();
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    const [stat, cmdline] = await Promise.all([readFile(`/proc/${entry}/stat`, 'utf8').catch(() => ''), readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '')]);
    if (!stat) continue;
    const close = stat.lastIndexOf(')');
    const comm = stat.slice(stat.indexOf('(') + 1, close);
    const fields = stat.slice(close + 2).split(' ');
    const ms = ((Number(fields[11]) + Number(fields[12])) * 1000) / tick;
    let role = roles.get(pid);
    if (!role && comm.startsWith('postgres')) {
      if (cmdline.includes(` ${database} `)) role = 'postgres';
      else if (!/\(\d+\)|\[local\]/.test(cmdline)) role = 'postgres'; // no client: checkpointer, WAL writer…
    }
    if (role) out.set(pid, { role, ms });
  }
  return out;
}

function cpuDelta(before: CpuSample, after: CpuSample): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [pid, { role, ms }] of after) out[role] = Math.round((out[role] ?? 0) + ms - (before.get(pid)?.ms ?? 0));
  out['total'] = Object.values(out).reduce((a, b) => a + b, 0);
  return out;
}

async function peakRssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return Math.round(kb / 1024);
}

async function main(): Promise<void> {
  const db = await createTestDatabase('bench_fleet');
  const nats = await startNats('max_payload: 8MB');
  try {
    const [registryPort, rolloutPort] = await Promise.all([freePort(), freePort()]);
    const common = { DATABASE_URL: db.url, NATS_URL: nats.url, LOG_LEVEL: 'warn', OTEL_SDK_DISABLED: 'true', CHANGEOVER_ADMIN_TOKEN: adminToken };
    const registryProc = start('registry', 'services/registry', [], { ...common, REGISTRY_HTTP_PORT: String(registryPort), REGISTRY_STALE_AFTER_MS: '600000' });
    const registry = `http://127.0.0.1:${registryPort}`;
    await waitFor('the registry', () => fetch(`${registry}/health`).then((r) => r.ok), { timeoutMs: 60_000, intervalMs: 200 });
    const rolloutProc = start('rollout', 'services/rollout', [], { ...common, ROLLOUT_HTTP_PORT: String(rolloutPort) });
    const rollout = `http://127.0.0.1:${rolloutPort}`;
    await waitFor('the rollout service', () => fetch(`${rollout}/health`).then((r) => r.ok), { timeoutMs: 60_000, intervalMs: 200 });

    say(`starting ${nodes} simulated nodes`);
    const fleetProc = start('fleet', 'services/node-agent', ['--simulate', String(nodes), '--class', 'bench', '--node-prefix', 'b', '--heartbeat-ms', '600000'], { NATS_URL: nats.url, LOG_LEVEL: 'warn' });
    const sql = new pg.Client({ connectionString: db.url });
    sql.on('error', () => undefined); // dropping the database at the end ends this connection
    await sql.connect();
    await waitFor(`${nodes} nodes registered`, async () => Number((await sql.query(`SELECT count(*) AS n FROM registry_nodes WHERE class_id = 'bench' AND NOT stale`)).rows[0].n) >= nodes, { timeoutMs: 300_000, intervalMs: 500 });
    // The rollout starts on a settled system: the registry has relayed the registration's events.
    await waitFor('the registry relay caught up', async () => {
      const text = await (await fetch(`${registry}/metrics`)).text();
      return /^changeover_outbox_lag_events 0$/m.test(text);
    }, { timeoutMs: 600_000, intervalMs: 500 });

    /** One rollout of bench-app@<version> over the whole class, timed from the REST call to `completed`. */
    const oneRollout = async (version: string) => {
      const blob = Buffer.from(`bench module ${version}\n`);
      const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
      await http('POST', `${registry}/packages`, {
        package: { manifest: { name: 'bench-app', version, description: '', modules: [{ name: 'bench-app', version, processorType: 'any', size: blob.length, digest, dependsOn: [], requires: {} }], requires: {}, provides: [], consumes: [] } },
        blobs: { [digest]: blob.toString('base64') },
      });
      // Each rollout starts on a settled system: the registry has relayed what the previous one made it write.
      await waitFor('the registry relay caught up', async () => /^changeover_outbox_lag_events 0$/m.test(await (await fetch(`${registry}/metrics`)).text()), { timeoutMs: 600_000, intervalMs: 100 });
      say(`rollout to ${version} started`);
      const cpuBefore = await sampleCpu(roles, database);
      const t0 = performance.now();
      const t0Wall = Date.now();
      const monoStartUs = process.hrtime.bigint() / 1000n;
      const created = await http<{ rolloutId: string }>('POST', `${rollout}/rollouts`, {
        update: { description: 'bench', targets: [{ classes: ['bench'], packages: [{ name: 'bench-app', version }] }] },
        policy: { waves: { canary: 0, size: '100%', successThreshold: 1 }, voteTimeoutMs: 600_000, changeoverTimeoutMs: 600_000 },
      });
      let status = '';
      // Watched as `changeover rollout watch` does: each request a long poll answered at the rollout's next change.
      for (let version = 0; !['completed', 'failed', 'aborted', 'cancelled', 'blocked', 'paused'].includes(status); ) {
        if (performance.now() - t0 > 1_800_000) throw new Error(`the rollout did not finish within 30 minutes (status ${status})`);
        ({ status, version } = await http<{ status: string; version: number }>('GET', `${rollout}/rollouts/${created.rolloutId}?after=${version}&waitMs=30000`));
      }
      const wallMs = performance.now() - t0;
      const cpuMs = cpuDelta(cpuBefore, await sampleCpu(roles, database));
      // The profiles' timestamps are on the same monotonic clock: this window is the rollout's part of them.
      const window = { startUs: Number(monoStartUs), endUs: Number(process.hrtime.bigint() / 1000n) };
      if (status !== 'completed') throw new Error(`rollout ended ${status}`);

      // Phases from the rollout's own events.
      const rows = (await sql.query(`SELECT event_type, min(created_at) AS first, max(created_at) AS last, count(*) AS n FROM events WHERE stream_id = $1 GROUP BY event_type`, [`rollout-${created.rolloutId}`])).rows as { event_type: string; first: Date; last: Date; n: string }[];
      const at = (type: string, which: 'first' | 'last' = 'first') => rows.find((r) => r.event_type === type)?.[which].getTime();
      const createdAt = at('rollout.created') ?? 0;
      const span = (from: number | undefined, to: number | undefined) => (from !== undefined && to !== undefined ? Math.round(to - from) : null);
      const phasesMs = {
        // From the REST call to the created event: target resolution and module selection through the registry.
        create: span(t0Wall, createdAt),
        vote: span(at('rollout.proposed'), at('rollout.accepted')),
        changeover: span(at('rollout.accepted'), at('rollout.nodes-completed', 'last')),
        verify: span(at('rollout.nodes-completed', 'last'), at('rollout.verified') ?? at('rollout.completed')),
        complete: span(createdAt, at('rollout.completed')),
        // From the completed event to the bench seeing the status (its poll and the REST answer).
        seen: span(at('rollout.completed'), t0Wall + wallMs),
      };
      const eventsAppended = rows.reduce((n, r) => n + Number(r.n), 0);
      return { wallMs, phasesMs, eventsAppended, cpuMs, window };
    };

    const roles = new Map<number, string>([[registryProc.pid!, 'registry'], [rolloutProc.pid!, 'rollout'], [fleetProc.pid!, 'fleet'], [process.pid, 'bench'], [nats.process.pid!, 'nats']]);
    const database = new URL(db.url).pathname.slice(1);
    const floorOf = (events: number) => measureFloor({ natsUrl: nats.url, databaseUrl: db.url, nodes, roundTrips: 2 * nodes, events });
    // A first rollout and floor warm the code up (JIT) and are reported, not counted. Then each measured
    // rollout is paired with a floor taken right after it, on the same machine in the same moment (the
    // services idle meanwhile): a shared machine's speed drifts by tens of percent over a minute, so
    // only figures taken together compare. The ratio is the median of the pairs' ratios.
    const warmup = runs > 1 ? { rollout: await oneRollout('2.0.0'), floor: undefined as FloorResult | undefined } : undefined;
    if (warmup) warmup.floor = await floorOf(warmup.rollout.eventsAppended);
    const pairs: { rollout: Awaited<ReturnType<typeof oneRollout>>; floor: FloorResult; ratio: number }[] = [];
    for (let i = 0; i < runs; i++) {
      const rollout = await oneRollout(`${i + 3}.0.0`);
      say('measuring the floor');
      const floor = await floorOf(rollout.eventsAppended);
      pairs.push({ rollout, floor, ratio: rollout.wallMs / floor.floorMs });
    }
    const orchestratorRssMb = await peakRssMb(rolloutProc.pid!);
    await sql.end();
    const medianOf = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    // The pair of the median ratio stands for the run: its phases, CPU and (for the profiles) its window.
    const ratio = medianOf(pairs.map((p) => p.ratio));
    const median = pairs.find((p) => p.ratio === ratio)!;
    const { phasesMs, eventsAppended, cpuMs } = median.rollout;
    const wallMs = medianOf(pairs.map((p) => p.rollout.wallMs));
    const floor = { ...median.floor, floorMs: medianOf(pairs.map((p) => p.floor.floorMs)) };
    if (cpuProfDir) await mkdir(resolve(cpuProfDir), { recursive: true }).then(() => writeFile(join(resolve(cpuProfDir), 'rollout-window.json'), JSON.stringify(median.rollout.window)));

    // Stopped now (and their profiles written).
    await Promise.all(children.splice(0).map((c) => new Promise<void>((done) => {
      if (c.exitCode !== null || c.signalCode !== null) return done();
      c.once('exit', () => done());
      c.kill('SIGTERM');
      setTimeout(() => c.kill('SIGKILL'), 30_000).unref();
    })));
    const result = {
      nodes,
      wallMs: Math.round(wallMs),
      floorMs: Math.round(floor.floorMs),
      ratio: Number(ratio.toFixed(2)),
      phasesMs,
      eventsAppended,
      orchestratorRssMb,
      cpuMs,
      floor: { roundTrips: floor.roundTrips, natsMs: Math.round(floor.natsMs), events: floor.events, insertMs: Math.round(floor.insertMs) },
      // Every measured pair, in the order taken (the medians above come from these), and the warm-up.
      runs: pairs.map((p) => ({ wallMs: Math.round(p.rollout.wallMs), floorMs: Math.round(p.floor.floorMs), ratio: Number(p.ratio.toFixed(2)) })),
      ...(warmup ? { warmup: { wallMs: Math.round(warmup.rollout.wallMs), floorMs: Math.round(warmup.floor!.floorMs) } } : {}),
    };
    if (json) console.log(JSON.stringify(result));
    else {
      console.log(`fleet rollout over ${nodes} simulated nodes: ${result.wallMs} ms, the median of ${runs} (${result.runs.map((r) => r.wallMs).join(', ')}); phases of the median pair ${JSON.stringify(phasesMs)}`);
      if (result.warmup) console.log(`warm-up (not counted): rollout ${result.warmup.wallMs} ms, floor ${result.warmup.floorMs} ms`);
      console.log(`floor, the median of ${runs} (${result.runs.map((r) => r.floorMs).join(', ')} ms):`);
      console.log(`floor: ${floor.roundTrips} NATS round trips ${result.floor.natsMs} ms + ${floor.events} event rows ${result.floor.insertMs} ms = ${result.floorMs} ms`);
      console.log(`CPU during the rollout (ms, by process): ${JSON.stringify(cpuMs)}`);
      console.log(`ratio ${result.ratio} (target ≤ 2 at 10,000 nodes); orchestrator peak RSS ${orchestratorRssMb} MB (target ≤ 512 MB at 10,000)`);
    }
  } finally {
    for (const c of children) c.kill('SIGKILL');
    await nats.stop();
    await db.drop();
  }
}

main().catch((e: unknown) => {
  for (const c of children) c.kill('SIGKILL');
  console.error(`bench:fleet failed: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
