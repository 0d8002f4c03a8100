import { spawn, type ChildProcess } from 'node:child_process';
import { openSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHash, randomBytes } from 'node:crypto';
import pg from 'pg';
import { createTestDatabase, freePort, startNats, waitFor } from '@changeover/test-kit';
import { connect } from '@nats-io/transport-node';
import { startFloor, type FleetSlice, type FloorResult, type FloorSample } from './fleet-floor.js';

// `npm run bench:fleet -- --nodes N [--runs K] [--fleet-procs P] [--json] [--check]`: full rollouts
// over N simulated nodes (in P separate processes), propose → vote → commit → changeover → report →
// dependency check, and in the same run the protocol floor: the rollout's two class broadcasts, the
// 2N reports back parsed with the service's own parsers, and its event batches inserted, with none of
// our orchestration. After a warm-up rollout (which also gives the floor its real messages), floors and
// rollouts alternate (floor, rollout, floor, …): each rollout is compared with the mean of the floors
// either side of it, and the median of those ratios is reported, so one slow moment of a shared
// machine does not decide it.

const args = process.argv.slice(2);
const flag = (name: string) => args.includes(`--${name}`);
const value = (name: string, fallback: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? args[i + 1]! : fallback;
};
const nodes = Number(value('nodes', '10000'));
if (!Number.isInteger(nodes) || nodes < 1) throw new Error('--nodes must be a positive integer');
const json = flag('json');
/** `--check`: exit 1 when a target is missed (by default the figures are printed and the exit code is 0: the bench is not a test). */
const check = flag('check');
/** `--fleet-procs P`: the simulated nodes are split over P processes (one per 250,000 nodes by default). */
const fleetProcs = Number(value('fleet-procs', String(Math.ceil(nodes / 250_000))));
if (!Number.isInteger(fleetProcs) || fleetProcs < 1 || fleetProcs > Math.min(nodes, 64)) throw new Error('--fleet-procs must be an integer from 1 to min(N, 64)');
/**
 * `--hello-rate R`: the fleet's hellos (and heartbeats) paced to R a second in all; unpaced up to
 * 20,000 nodes, 3,000 a second above, where an unpaced start can say more hellos than the registry
 * reads before NATS drops them as a slow consumer's.
 */
const helloRate = Number(value('hello-rate', nodes > 20_000 ? '3000' : '0'));
if (!Number.isInteger(helloRate) || helloRate < 0) throw new Error('--hello-rate must be a non-negative integer');
/** The target: each rollout within this factor of the protocol floor measured beside it. */
const FLOOR_TARGET = 3;
/** `--runs K`: K rollouts (each to a new version) and K floor measurements; the figures are their medians. */
const runs = Number(value('runs', nodes > 20_000 ? '1' : '3'));
if (!Number.isInteger(runs) || runs < 1 || runs > 9) throw new Error('--runs must be an integer from 1 to 9');
/** `--cpu-prof-dir DIR`: every service and the fleet write a V8 CPU profile there when they stop. */
const cpuProfDir = value('cpu-prof-dir', '');
/** `--timeline`: each rollout's events, with their time from the REST call, on stderr. */
const timeline = flag('timeline');
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
  // A class's nodes are one select-modules reply (about 12 bytes a node): 1,000,000 nodes need more than 8 MB.
  const nats = await startNats(`max_payload: ${nodes > 500_000 ? 32 : 8}MB`);
  try {
    const [registryPort, rolloutPort] = await Promise.all([freePort(), freePort()]);
    const common = { DATABASE_URL: db.url, NATS_URL: nats.url, LOG_LEVEL: 'warn', OTEL_SDK_DISABLED: 'true', CHANGEOVER_ADMIN_TOKEN: adminToken };
    const registryProc = start('registry', 'services/registry', [], { ...common, REGISTRY_HTTP_PORT: String(registryPort), REGISTRY_STALE_AFTER_MS: '600000' });
    const registry = `http://127.0.0.1:${registryPort}`;
    await waitFor('the registry', () => fetch(`${registry}/health`).then((r) => r.ok), { timeoutMs: 60_000, intervalMs: 200 });
    const rolloutProc = start('rollout', 'services/rollout', [], { ...common, ROLLOUT_HTTP_PORT: String(rolloutPort) });
    const rollout = `http://127.0.0.1:${rolloutPort}`;
    await waitFor('the rollout service', () => fetch(`${rollout}/health`).then((r) => r.ok), { timeoutMs: 60_000, intervalMs: 200 });

    say(`starting ${nodes} simulated nodes in ${fleetProcs} process${fleetProcs > 1 ? 'es' : ''}`);
    // Slice k runs nodes b<k>-1… (one process: b-1…), as many per process as evenly as they go.
    const slices: FleetSlice[] = Array.from({ length: fleetProcs }, (_, k) => ({ prefix: fleetProcs === 1 ? 'b' : `b${k}`, count: Math.floor(nodes / fleetProcs) + (k < nodes % fleetProcs ? 1 : 0) }));
    const fleetProcsStarted = slices.map((s, k) => start(fleetProcs === 1 ? 'fleet' : `fleet-${k}`, 'services/node-agent', ['--simulate', String(s.count), '--class', 'bench', '--node-prefix', s.prefix, '--heartbeat-ms', '600000', ...(helloRate ? ['--report-rate', String(Math.ceil(helloRate / fleetProcs))] : [])], { NATS_URL: nats.url, LOG_LEVEL: 'warn' }));
    const sql = new pg.Client({ connectionString: db.url });
    sql.on('error', () => undefined); // dropping the database at the end ends this connection
    await sql.connect();
    await waitFor(`${nodes} nodes registered`, async () => Number((await sql.query(`SELECT count(*) AS n FROM registry_nodes WHERE class_id = 'bench' AND NOT stale`)).rows[0].n) >= nodes, { timeoutMs: Math.max(300_000, nodes * 2), intervalMs: Math.max(500, nodes / 200) }); // a count over a million rows is not free
    // The rollout starts on a settled system: the registry has relayed the registration's events.
    await waitFor('the registry relay caught up', async () => {
      const text = await (await fetch(`${registry}/metrics`)).text();
      return /^changeover_outbox_lag_events 0$/m.test(text);
    }, { timeoutMs: 600_000, intervalMs: 500 });

    /** One rollout of bench-app@<version> over the whole class, timed from the REST call to `completed`; `capture` keeps what the floor replays. */
    const oneRollout = async (version: string, capture?: (nc: Awaited<ReturnType<typeof connect>>) => void) => {
      const blob = Buffer.from(`bench module ${version}\n`);
      const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
      await http('POST', `${registry}/packages`, {
        package: { manifest: { name: 'bench-app', version, description: '', modules: [{ name: 'bench-app', version, processorType: 'any', size: blob.length, digest, dependsOn: [], requires: {} }], requires: {}, provides: [], consumes: [] } },
        blobs: { [digest]: blob.toString('base64') },
      });
      // Each rollout starts on a settled system: the registry has relayed what the previous one made it write.
      await waitFor('the registry relay caught up', async () => /^changeover_outbox_lag_events 0$/m.test(await (await fetch(`${registry}/metrics`)).text()), { timeoutMs: 600_000, intervalMs: 100 });
      say(`rollout to ${version} started`);
      if (capture) capture(await watcher());
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
      // The rollout's appends as it made them: its rows, one batch per transaction.
      const appended = (await sql.query(`SELECT transaction_id::text AS tx, event_type, data::text AS data, metadata::text AS metadata FROM events WHERE stream_id = $1 ORDER BY global_position`, [`rollout-${created.rolloutId}`])).rows as { tx: string; event_type: string; data: string; metadata: string }[];
      const batches: FloorSample['batches'] = [];
      appended.forEach((r, i) => {
        if (i === 0 || r.tx !== appended[i - 1]!.tx) batches.push([]);
        batches.at(-1)!.push({ type: r.event_type, data: r.data, metadata: r.metadata });
      });
      if (timeline) {
        const t = (await sql.query(`SELECT event_type, created_at, length(data::text) AS bytes FROM events WHERE stream_id = $1 ORDER BY global_position`, [`rollout-${created.rolloutId}`])).rows as { event_type: string; created_at: Date; bytes: number }[];
        say(t.map((r) => `  +${r.created_at.getTime() - t0Wall} ms ${r.event_type} (${r.bytes} B)`).join('\n'));
      }
      return { wallMs, phasesMs, eventsAppended, batches, cpuMs, window };
    };

    /** A connection to the private server that sees the warm-up rollout's broadcasts and one report of each kind. */
    let watching: Awaited<ReturnType<typeof connect>> | undefined;
    const watcher = async () => (watching ??= await connect({ servers: nats.url }));
    const messages: Partial<Omit<FloorSample, 'batches'>> = {};
    const captureMessages = (nc: Awaited<ReturnType<typeof connect>>) => {
      const text = (d: Uint8Array) => Buffer.from(d).toString('utf8');
      nc.subscribe('changeover.class.bench.propose', { max: 1, callback: (_e, m) => void (messages.propose = m.data.slice()) });
      nc.subscribe('changeover.class.bench.commit', { max: 1, callback: (_e, m) => void (messages.commit = m.data.slice()) });
      nc.subscribe('changeover.agent.*.vote', { max: 1, callback: (_e, m) => void (messages.vote = { text: text(m.data), nodeId: m.subject.split('.')[2]! }) });
      const progress = nc.subscribe('changeover.agent.*.progress', { callback: (_e, m) => {
        const t = text(m.data);
        if (messages.progress || !t.includes('"phase":"completed"')) return;
        messages.progress = { text: t, nodeId: m.subject.split('.')[2]! };
        progress.unsubscribe();
      } });
    };

    const roles = new Map<number, string>([[registryProc.pid!, 'registry'], [rolloutProc.pid!, 'rollout'], ...fleetProcsStarted.map((p) => [p.pid!, 'fleet'] as [number, string]), [process.pid, 'bench'], [nats.process.pid!, 'nats']]);
    const database = new URL(db.url).pathname.slice(1);
    // A first rollout warms the code up (JIT) and gives the floor the real messages and event batches;
    // it is reported, not counted. A first floor warms the floor's code. Then floors and rollouts
    // alternate, on the same machine in the same minutes (the services idle during a floor): a shared
    // machine's speed drifts by tens of percent over a minute, so only figures taken together compare.
    const warmupRollout = await oneRollout('2.0.0', captureMessages);
    await watching?.close();
    const { propose, commit, vote, progress } = messages;
    if (!propose || !commit || !vote || !progress) throw new Error(`the warm-up rollout did not show every message the floor replays (${Object.keys(messages).join(', ') || 'none'})`);
    const floorRunner = await startFloor({ natsUrl: nats.url, databaseUrl: db.url, classId: 'bench', slices });
    let batches = warmupRollout.batches;
    const floorNow = async () => {
      say('measuring the floor');
      return floorRunner.measure({ propose, commit, vote, progress, batches });
    };
    const warmup = { rollout: warmupRollout, floor: await floorNow() };
    const floors: FloorResult[] = [await floorNow()];
    const pairs: { rollout: Awaited<ReturnType<typeof oneRollout>>; floor: FloorResult; floorMs: number; ratio: number }[] = [];
    for (let i = 0; i < runs; i++) {
      const rollout = await oneRollout(`${i + 3}.0.0`);
      batches = rollout.batches;
      const after = await floorNow();
      floors.push(after);
      // The rollout against the floors either side of it.
      const floorMs = (floors.at(-2)!.floorMs + after.floorMs) / 2;
      pairs.push({ rollout, floor: after, floorMs, ratio: rollout.wallMs / floorMs });
    }
    await floorRunner.close();
    const orchestratorRssMb = await peakRssMb(rolloutProc.pid!);
    await sql.end();
    const medianOf = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    // The pair of the median ratio stands for the run: its phases, CPU and (for the profiles) its window.
    const ratio = medianOf(pairs.map((p) => p.ratio));
    const median = pairs.find((p) => p.ratio === ratio)!;
    const { phasesMs, eventsAppended, cpuMs } = median.rollout;
    const wallMs = medianOf(pairs.map((p) => p.rollout.wallMs));
    const floor = { ...median.floor, floorMs: medianOf(floors.map((f) => f.floorMs)) };
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
      fleetProcesses: fleetProcs,
      floor: { reports: 2 * floor.nodes, bytes: floor.bytes, natsMs: Math.round(floor.natsMs), events: floor.events, batches: floor.batches, insertMs: Math.round(floor.insertMs) },
      // Every floor and every rollout in the order taken (the medians above come from these), and the warm-up.
      floors: floors.map((f) => Math.round(f.floorMs)),
      runs: pairs.map((p) => ({ wallMs: Math.round(p.rollout.wallMs), floorMs: Math.round(p.floorMs), ratio: Number(p.ratio.toFixed(2)) })),
      warmup: { wallMs: Math.round(warmup.rollout.wallMs), floorMs: Math.round(warmup.floor.floorMs) },
      target: { ratio: FLOOR_TARGET, met: ratio <= FLOOR_TARGET },
    };
    if (json) console.log(JSON.stringify(result));
    else {
      console.log(`fleet rollout over ${nodes} simulated nodes: ${result.wallMs} ms, the median of ${runs} (${result.runs.map((r) => r.wallMs).join(', ')}); phases of the median pair ${JSON.stringify(phasesMs)}`);
      console.log(`warm-up (not counted): rollout ${result.warmup.wallMs} ms, floor ${result.warmup.floorMs} ms`);
      console.log(`protocol floor, the median of ${floors.length} taken between the rollouts (${result.floors.join(', ')} ms):`);
      console.log(`  2 class broadcasts (${floor.bytes.propose} + ${floor.bytes.commit} B) and ${result.floor.reports} reports parsed (${floor.bytes.vote} B votes, ${floor.bytes.progress} B completions) ${result.floor.natsMs} ms + ${floor.events} event rows in ${floor.batches} INSERTs ${result.floor.insertMs} ms = ${result.floorMs} ms`);
      console.log(`CPU during the rollout (ms, by process): ${JSON.stringify(cpuMs)}`);
      console.log(`rollout / floor: ${result.ratio}, the median of ${result.runs.map((r) => r.ratio).join(', ')} (target ≤ ${FLOOR_TARGET}: ${result.target.met ? 'met' : 'not met'}); orchestrator peak RSS ${orchestratorRssMb} MB`);
    }
    if (check && !result.target.met) process.exitCode = 1;
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
