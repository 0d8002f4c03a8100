// Event-store benchmark: 60,000 events through group commit vs the raw multi-row INSERT floor vs one transaction per event.
// npm run bench:event-store [-- --json]   (DATABASE_URL: a server where it may create and drop a database)
import { EventStore, migrate } from '@changeover/event-store';
import pg from 'pg';
import { randomBytes, randomUUID } from 'node:crypto';

const STREAMS = 10_000;
const EVENTS_PER_STREAM = 6;
const EVENTS = STREAMS * EVENTS_PER_STREAM;
const ONE_TX_SAMPLE = 5_000;
/** Rows per raw INSERT statement: the fastest size measured here (6 parameters a row). */
const RAW_CHUNK = 2_000;
const GROUP_COMMIT = { maxBatch: 2_000, maxWaitMs: 2 };
const TARGETS = { ratioToRaw: 0.7, speedupOverOneTx: 10 };

interface Row {
  streamId: string;
  position: number;
  id: string;
  type: string;
  data: string;
  metadata: string;
}

/** The same rows for every method: six events per node stream, as a rollout writes them. */
function makeRows(): Row[] {
  const phases = ['proposed', 'voted', 'fetched', 'prepared', 'switched', 'verified'];
  const rows: Row[] = [];
  for (let s = 0; s < STREAMS; s++) {
    for (let p = 0; p < EVENTS_PER_STREAM; p++) {
      const traceparent = `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-01`;
      rows.push({
        streamId: `node-bench${s}`,
        position: p + 1,
        id: randomUUID(),
        type: 'rollout.node-progressed',
        data: JSON.stringify({ rolloutId: 'bench-rollout', nodeId: `bench${s}`, phase: phases[p], attempt: 1, at: '2025-01-01T00:00:00.000Z' }),
        metadata: JSON.stringify({ traceparent, actor: 'bench' }),
      });
    }
  }
  return rows;
}

const seconds = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e9;

async function truncate(db: pg.Pool): Promise<void> {
  await db.query('TRUNCATE events RESTART IDENTITY');
  await db.query('VACUUM ANALYZE events');
}

/** 10,000 concurrent callers, each appending its stream's six events one append at a time with its expected version. */
async function groupCommit(url: string, rows: Row[]): Promise<number> {
  const store = await EventStore.connect({ url, poolSize: 4, groupCommit: GROUP_COMMIT });
  const byStream = new Map<string, Row[]>();
  for (const r of rows) (byStream.get(r.streamId) ?? byStream.set(r.streamId, []).get(r.streamId)!).push(r);
  const start = process.hrtime.bigint();
  await Promise.all(
    [...byStream.entries()].map(async ([streamId, events]) => {
      for (const e of events) {
        await store.append(streamId, e.position - 1, [{ id: e.id, type: e.type, data: JSON.parse(e.data), metadata: JSON.parse(e.metadata) }]);
      }
    }),
  );
  const elapsed = seconds(start);
  await store.close();
  return elapsed;
}

/** The floor: the same rows as multi-row INSERT … VALUES statements, one after another. */
async function rawInsert(db: pg.Pool, rows: Row[]): Promise<number> {
  const client = await db.connect();
  try {
    const start = process.hrtime.bigint();
    for (let i = 0; i < rows.length; i += RAW_CHUNK) {
      const chunk = rows.slice(i, i + RAW_CHUNK);
      const values: unknown[] = [];
      const tuples = chunk.map((r, j) => {
        values.push(r.streamId, r.position, r.id, r.type, r.data, r.metadata);
        const b = j * 6;
        return `($${b + 1}, $${b + 2}, $${b + 3}, $${b + 4}, $${b + 5}::jsonb, $${b + 6}::jsonb)`;
      });
      await client.query(`INSERT INTO events (stream_id, stream_position, event_id, event_type, data, metadata) VALUES ${tuples.join(', ')}`, values);
    }
    return seconds(start);
  } finally {
    client.release();
  }
}

/** One INSERT per event in its own transaction (autocommit), on one connection: a sample scaled to all events. */
async function oneTxPerEvent(db: pg.Pool, rows: Row[]): Promise<number> {
  const client = await db.connect();
  try {
    const sample = rows.slice(0, ONE_TX_SAMPLE);
    const start = process.hrtime.bigint();
    for (const r of sample) {
      await client.query('INSERT INTO events (stream_id, stream_position, event_id, event_type, data, metadata) VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb)', [r.streamId, r.position, r.id, r.type, r.data, r.metadata]);
    }
    return (seconds(start) * rows.length) / sample.length;
  } finally {
    client.release();
  }
}

async function checkAllIn(db: pg.Pool): Promise<void> {
  const { rows } = await db.query<{ n: string; streams: string; max: number }>('SELECT count(*)::text AS n, count(DISTINCT stream_id)::text AS streams, max(stream_position) AS max FROM events');
  const r = rows[0]!;
  if (Number(r.n) !== EVENTS || Number(r.streams) !== STREAMS || r.max !== EVENTS_PER_STREAM) throw new Error(`group commit wrote ${r.n} events in ${r.streams} streams, expected ${EVENTS} in ${STREAMS}`);
}

async function main(): Promise<void> {
  const json = process.argv.includes('--json');
  const adminUrl = process.env['DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const name = `changeover_bench_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE "${name}"`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const db = new pg.Pool({ connectionString: url.toString(), max: 2 });
  try {
    await migrate(url.toString());
    const rows = makeRows();
    // Warm-up so that no method pays for first-use costs.
    await groupCommit(url.toString(), rows.slice(0, 6_000));
    await truncate(db);
    await rawInsert(db, rows.slice(0, 6_000));
    await truncate(db);

    const gc = await groupCommit(url.toString(), rows);
    await checkAllIn(db);
    await truncate(db);
    const raw = await rawInsert(db, rows);
    await truncate(db);
    const oneTx = await oneTxPerEvent(db, rows);

    const result = {
      events: EVENTS,
      groupCommitPerSec: Math.round(EVENTS / gc),
      rawInsertPerSec: Math.round(EVENTS / raw),
      oneTxPerEventPerSec: Math.round(EVENTS / oneTx),
      ratioToRaw: Number((raw / gc).toFixed(3)),
      speedupOverOneTx: Number((oneTx / gc).toFixed(1)),
    };
    if (json) {
      console.log(JSON.stringify(result));
      return;
    }
    const line = (what: string, s: number, perSec: number) => `${what.padEnd(44)} ${s.toFixed(2).padStart(8)} s ${String(perSec).padStart(10)} events/s`;
    console.log(`event store: ${EVENTS.toLocaleString('en')} events (${STREAMS.toLocaleString('en')} streams × ${EVENTS_PER_STREAM})`);
    console.log(line(`group commit, ${STREAMS.toLocaleString('en')} concurrent callers`, gc, result.groupCommitPerSec));
    console.log(line(`floor: raw INSERT, ${RAW_CHUNK} rows a statement`, raw, result.rawInsertPerSec));
    console.log(line(`one transaction per event (${ONE_TX_SAMPLE.toLocaleString('en')} sampled)`, oneTx, result.oneTxPerEventPerSec));
    const ok = (v: number, t: number) => (v >= t ? 'met' : 'MISSED');
    console.log(`ratio to raw floor      ${result.ratioToRaw}  (target ≥ ${TARGETS.ratioToRaw}: ${ok(result.ratioToRaw, TARGETS.ratioToRaw)})`);
    console.log(`speedup over one tx     ${result.speedupOverOneTx}×  (target ≥ ${TARGETS.speedupOverOneTx}: ${ok(result.speedupOverOneTx, TARGETS.speedupOverOneTx)})`);
  } finally {
    await db.end();
    await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    await admin.end();
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : String(e));
  process.exit(1);
});
