import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { connect } from '@nats-io/transport-node';
import pg from 'pg';

/**
 * The floor a fleet rollout is compared with: the same number of NATS round trips to N
 * responders in another process, plus the same number of event rows in multi-row INSERTs.
 * Nothing of ours runs in it, so ratio = rollout / floor says what our code adds.
 */
export interface FloorResult {
  roundTrips: number;
  natsMs: number;
  events: number;
  insertMs: number;
  floorMs: number;
}

const responderPath = fileURLToPath(new URL('./fleet-floor-responder.js', import.meta.url));

export async function measureFloor(opts: { natsUrl: string; databaseUrl: string; nodes: number; roundTrips: number; events: number }): Promise<FloorResult> {
  const natsMs = await measureRoundTrips(opts.natsUrl, opts.nodes, opts.roundTrips);
  const insertMs = await measureInserts(opts.databaseUrl, opts.events);
  return { roundTrips: opts.roundTrips, natsMs, events: opts.events, insertMs, floorMs: natsMs + insertMs };
}

async function measureRoundTrips(natsUrl: string, nodes: number, roundTrips: number): Promise<number> {
  const child = fork(responderPath, [natsUrl], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  try {
    await new Promise<void>((resolve, reject) => {
      child.once('message', () => resolve());
      child.once('exit', (code) => reject(new Error(`floor responder exited (${code})`)));
    });
    const nc = await connect({ servers: natsUrl });
    const payload = new TextEncoder().encode(JSON.stringify({ rolloutId: 'floor', attempt: 0, pad: 'x'.repeat(200) }));
    const inFlight = 1000;
    const started = performance.now();
    let next = 0;
    const worker = async () => {
      for (let i = next++; i < roundTrips; i = next++) {
        await nc.request(`floor.node.n${i % nodes}.propose`, payload, { timeout: 30_000 });
      }
    };
    await Promise.all(Array.from({ length: Math.min(inFlight, roundTrips) }, worker));
    const ms = performance.now() - started;
    await nc.close();
    return ms;
  } finally {
    child.kill('SIGKILL');
  }
}

async function measureInserts(databaseUrl: string, events: number): Promise<number> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    await client.query(`CREATE TEMP TABLE floor_events (
      global_position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      transaction_id xid8 NOT NULL DEFAULT pg_current_xact_id(),
      stream_id text NOT NULL, stream_position integer NOT NULL, event_id text NOT NULL UNIQUE,
      event_type text NOT NULL, data jsonb NOT NULL, metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
      created_at timestamptz NOT NULL DEFAULT now(), UNIQUE (stream_id, stream_position))`);
    const data = JSON.stringify({ rolloutId: 'floor', nodeId: 'n0', decision: 'accept', verdicts: [], at: new Date().toISOString() });
    const batch = 1000;
    const started = performance.now();
    for (let base = 0; base < events; base += batch) {
      const n = Math.min(batch, events - base);
      const values: string[] = [];
      const params: unknown[] = [];
      for (let i = 0; i < n; i++) {
        const p = params.length;
        values.push(`($${p + 1}, $${p + 2}, $${p + 3}, $${p + 4}, $${p + 5})`);
        params.push(`floor-${(base + i) % 1000}`, Math.floor((base + i) / 1000) + 1, `e-${base + i}`, 'rollout.votes-recorded', data);
      }
      await client.query(`INSERT INTO floor_events (stream_id, stream_position, event_id, event_type, data) VALUES ${values.join(',')}`, params);
    }
    return performance.now() - started;
  } finally {
    await client.end();
  }
}
