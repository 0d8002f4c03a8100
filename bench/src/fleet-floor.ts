import { fork, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { decode, isAgentReportSubject, ProgressReport, RepeatedTailDecoder, VoteReport } from '@changeover/contracts';
import pg from 'pg';

/**
 * The protocol floor a fleet rollout is compared with: what the protocol cannot do without, with none
 * of our orchestration in it. One class broadcast of the rollout's real proposal, N votes of the real
 * vote's size back (each parsed and validated with the schema and subject check the rollout service
 * uses), one class broadcast of the real commit, N completion reports of the real size back (parsed
 * the same way, the repeated inventory validated once as the service does), then the rollout's own
 * event rows inserted in the batches it appended them in (one multi-row INSERT per transaction, into
 * a copy of the events table). floorMs = natsMs + insertMs.
 */
export interface FloorResult {
  nodes: number;
  /** Bytes of the proposal and commit broadcasts, and of one vote and one completion report. */
  bytes: { propose: number; commit: number; vote: number; progress: number };
  natsMs: number;
  events: number;
  batches: number;
  insertMs: number;
  floorMs: number;
}

/** What the floor replays, taken from a real rollout: its broadcasts, one report of each kind, its event batches. */
export interface FloorSample {
  propose: Uint8Array;
  commit: Uint8Array;
  /** A vote and a completion of one node, as JSON text, and the id they name (replaced by each node's own). */
  vote: { text: string; nodeId: string };
  progress: { text: string; nodeId: string };
  /** The rollout's event rows, one array per transaction it appended in. */
  batches: { type: string; data: string; metadata: string }[][];
}

/** A slice of the fleet: `count` nodes `<prefix>-1…<prefix>-count`, as one simulated-fleet process runs them. */
export interface FleetSlice {
  prefix: string;
  count: number;
}

const responderPath = fileURLToPath(new URL('./fleet-floor-responder.js', import.meta.url));
const ROOT = 'floor';

/** Starts one responder process per fleet slice and answers floors until `close`. */
export async function startFloor(opts: { natsUrl: string; databaseUrl: string; classId: string; slices: FleetSlice[] }): Promise<{ measure(sample: FloorSample): Promise<FloorResult>; close(): Promise<void> }> {
  const children: ChildProcess[] = [];
  const nc = await connect({ servers: opts.natsUrl });
  const sql = new pg.Client({ connectionString: opts.databaseUrl });
  await sql.connect();
  await sql.query(`CREATE TABLE IF NOT EXISTS floor_events (LIKE events INCLUDING ALL)`);
  let floors = 0;
  try {
    for (const s of opts.slices) {
      const child = fork(responderPath, [opts.natsUrl, ROOT, opts.classId, s.prefix, String(s.count)], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'], execArgv: ['--max-semi-space-size=32'] });
      children.push(child);
      await new Promise<void>((resolve, reject) => {
        child.once('message', () => resolve());
        child.once('exit', (code) => reject(new Error(`floor responder exited (${code})`)));
      });
    }
  } catch (e) {
    for (const c of children) c.kill('SIGKILL');
    throw e;
  }
  const nodes = opts.slices.reduce((n, s) => n + s.count, 0);
  return {
    async measure(sample) {
      floors += 1;
      for (const c of children) c.send({ vote: sample.vote, progress: sample.progress });
      await Promise.all(children.map((c) => new Promise<void>((resolve) => c.once('message', () => resolve()))));
      const natsMs = await roundTrips(nc, opts.classId, nodes, sample);
      const insertMs = await inserts(sql, sample.batches, `floor-${floors}`);
      const events = sample.batches.reduce((n, b) => n + b.length, 0);
      return {
        nodes,
        bytes: { propose: sample.propose.length, commit: sample.commit.length, vote: Buffer.byteLength(sample.vote.text), progress: Buffer.byteLength(sample.progress.text) },
        natsMs,
        events,
        batches: sample.batches.length,
        insertMs,
        floorMs: natsMs + insertMs,
      };
    },
    async close() {
      for (const c of children) c.kill('SIGKILL');
      await nc.close();
      await sql.end();
    },
  };
}

/** Propose broadcast → N votes parsed → commit broadcast → N completions parsed. */
async function roundTrips(nc: NatsConnection, classId: string, nodes: number, sample: FloorSample): Promise<number> {
  const progress = new RepeatedTailDecoder(ProgressReport, 'inventory');
  let votes = 0;
  let done = 0;
  let bad = 0;
  let finish: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  const started = performance.now();
  const voteSub = nc.subscribe(`${ROOT}.agent.*.vote`, { callback: (_e, m) => {
    const v = decode(VoteReport, m.data);
    // The subject check the service makes (what NATS permissions vouch for), on its own root.
    if (!isAgentReportSubject(`changeover${m.subject.slice(ROOT.length)}`, v.nodeId, 'vote')) bad += 1;
    if (++votes === nodes) nc.publish(`${ROOT}.class.${classId}.commit`, sample.commit);
  } });
  const progressSub = nc.subscribe(`${ROOT}.agent.*.progress`, { callback: (_e, m) => {
    const p = progress.decode(m.data);
    if (!isAgentReportSubject(`changeover${m.subject.slice(ROOT.length)}`, p.nodeId, 'progress')) bad += 1;
    if (++done === nodes) finish();
  } });
  await nc.flush();
  const t0 = performance.now();
  nc.publish(`${ROOT}.class.${classId}.propose`, sample.propose);
  const timeout = setTimeout(finish, 600_000);
  await finished;
  clearTimeout(timeout);
  const ms = performance.now() - t0;
  voteSub.unsubscribe();
  progressSub.unsubscribe();
  if (done !== nodes || votes !== nodes) throw new Error(`floor: ${votes} votes and ${done} completions of ${nodes} within 10 minutes (after ${Math.round(performance.now() - started)} ms)`);
  if (bad) throw new Error(`floor: ${bad} reports failed the subject check`);
  return ms;
}

/** The rollout's batches, each one INSERT (its own transaction) of its rows under a fresh stream id. */
async function inserts(sql: pg.Client, batches: FloorSample['batches'], streamId: string): Promise<number> {
  await sql.query('TRUNCATE floor_events');
  let position = 0;
  const started = performance.now();
  for (const batch of batches) {
    const n = batch.length;
    const positions = batch.map(() => ++position);
    await sql.query(
      `INSERT INTO floor_events (stream_id, stream_position, event_id, event_type, data, metadata)
       SELECT $1, p, e, t, d::jsonb, m::jsonb FROM unnest($2::int[], $3::text[], $4::text[], $5::text[], $6::text[]) AS x(p, e, t, d, m)`,
      [streamId, positions, Array.from({ length: n }, () => randomUUID()), batch.map((r) => r.type), batch.map((r) => r.data), batch.map((r) => r.metadata)],
    );
  }
  return performance.now() - started;
}
