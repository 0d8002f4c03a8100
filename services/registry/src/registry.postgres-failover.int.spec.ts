import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { GetPackagesReply, PublishPackageReply, STREAMS } from '@changeover/contracts';
import { jetstreamManager } from '@nats-io/jetstream';
import { multiHostUrl, startPostgresServer, waitFor, type TestPostgresServer } from '@changeover/test-kit';
import pg from 'pg';
import { buildPackage, publishRequest, sign, startTestRegistry, TEST_AUTH_HEADER, type TestRegistry } from './testing/registry.fixtures.js';

// The registry on a Postgres of the test's own, a primary and a synchronous streaming replica named
// together in DATABASE_URL: it goes on publishing packages over REST and NATS after a kill -9 and start
// of the primary, and after the primary's death and the replica's promotion; its events are in Postgres
// and on CHANGEOVER_EVENTS once each.

jest.setTimeout(180_000);

let primary: TestPostgresServer;
let replica: TestPostgresServer;
let database: string;
let t: TestRegistry;

const pkg = (version: string) => buildPackage('svc', version, [{ name: 'bin', content: `svc ${version}` }]);

async function publishOverRest(version: string): Promise<number> {
  const p = pkg(version);
  const res = await fetch(`${t.baseUrl}/packages`, {
    method: 'POST',
    headers: { ...TEST_AUTH_HEADER, 'content-type': 'application/json' },
    body: JSON.stringify({ package: sign(p), blobs: Object.fromEntries([...p.blobs].map(([d, b]) => [d, b.toString('base64')])) }),
  });
  return res.status;
}

async function eventIds(server: TestPostgresServer): Promise<string[]> {
  const c = new pg.Client({ connectionString: server.url(database) });
  await c.connect();
  try {
    return (await c.query<{ event_id: string }>('SELECT event_id FROM events ORDER BY global_position')).rows.map((r) => r.event_id);
  } finally {
    await c.end();
  }
}

async function relayedOnce(server: TestPostgresServer): Promise<void> {
  const stored = await eventIds(server);
  expect(new Set(stored).size).toBe(stored.length);
  const jsm = await jetstreamManager(t.nc);
  const relayed = await waitFor('every stored event relayed', async () => {
    const info = await jsm.streams.info(STREAMS.events);
    if (info.state.messages < stored.length) return undefined;
    const got: string[] = [];
    for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) got.push((await jsm.streams.getMessage(STREAMS.events, { seq }))!.header.get('Nats-Msg-Id'));
    return got;
  }, { timeoutMs: 60_000, intervalMs: 200 });
  expect(new Set(relayed).size).toBe(relayed.length);
  expect([...relayed].sort()).toEqual([...stored].sort());
}

beforeAll(async () => {
  primary = await startPostgresServer({ name: 'registry-pg-a' });
  database = (await primary.createDatabase('registry_pg')).name;
  replica = await primary.createReplica({ name: 'registry-pg-b', synchronous: true });
  t = await startTestRegistry({ DATABASE_URL: multiHostUrl([primary, replica], database) });
});

afterAll(async () => {
  await t?.stop();
  await Promise.all([primary?.stop(), replica?.stop()]);
});

describe('registry on a Postgres that restarts and fails over', () => {
  it('publishes before and after a kill -9 and start of the primary', async () => {
    expect(await publishOverRest('1.0.0')).toBe(201);
    await primary.restart('SIGKILL');
    expect(await publishOverRest('2.0.0')).toBe(201);
    const reply = await t.rpc('publish-package', publishRequest(sign(pkg('2.1.0')), pkg('2.1.0').blobs), PublishPackageReply);
    expect(reply.created).toBe(true);
    await relayedOnce(primary);
  });

  it('moves to the promoted replica: publishes go on and earlier packages are still served', async () => {
    await primary.kill('SIGKILL');
    await replica.promote();
    expect(await publishOverRest('3.0.0')).toBe(201);
    const got = await t.rpc('get-packages', { packages: ['1.0.0', '2.0.0', '2.1.0', '3.0.0'].map((version) => ({ name: 'svc', version })) }, GetPackagesReply);
    expect(got.packages.map((p) => p.manifest.version)).toEqual(['1.0.0', '2.0.0', '2.1.0', '3.0.0']);
    await relayedOnce(replica);
  });
});
