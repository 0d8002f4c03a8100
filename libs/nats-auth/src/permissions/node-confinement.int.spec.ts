import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { PermissionViolationError, connect, credsAuthenticator, type Msg, type NatsConnection } from '@nats-io/transport-node';
import { waitFor } from '@changeover/test-kit';
import { connectNode, connectService, enrollAndConnect, startAuthServer, type NodeConn } from '../testing/auth-server.js';
import { mintNodeCredentials } from '../credentials/mint.js';
import { createAuthority } from '../authority/authority.js';

// One operator-mode server: services are unrestricted, node-a and node-b (class web) are confined.
let server: Awaited<ReturnType<typeof startAuthServer>>;
let svc: NatsConnection;
let a: NodeConn;
let b: NodeConn;
const reports: string[] = [];

beforeAll(async () => {
  server = await startAuthServer();
  svc = await connectService(server.nats.url, server.authority);
  svc.subscribe('changeover.agent.>', { callback: (_e, m) => void reports.push(`${m.subject} ${m.string()}`) });
  await svc.flush();
  a = await enrollAndConnect(server.nats.url, server.authority, 'node-a', 'web');
  b = await enrollAndConnect(server.nats.url, server.authority, 'node-b', 'db');
});

afterAll(async () => {
  for (const nc of [a?.nc, b?.nc, svc]) await nc?.close();
  await server?.stop();
});

/** Messages on one connection arrive in order: once the marker is here, anything sent before it would be too. */
async function publishThenMarker(node: NodeConn, subject: string): Promise<void> {
  const marker = `marker-${Math.random()}`;
  node.nc.publish(subject, 'forged');
  node.nc.publish(`changeover.agent.${node.creds.nodeId}.heartbeat`, marker);
  await waitFor('the marker report', () => reports.some((r) => r.endsWith(marker)));
}

describe('a node on NATS', () => {
  it('publishes its own reports', async () => {
    a.nc.publish('changeover.agent.node-a.hello', 'hi from a');
    await waitFor('own report', () => reports.includes('changeover.agent.node-a.hello hi from a'));
  });

  it('cannot publish a report as another node', async () => {
    await publishThenMarker(a, 'changeover.agent.node-b.vote');
    expect(reports.filter((r) => r.startsWith('changeover.agent.node-b.'))).toEqual([]);
    await waitFor('publish violation', () => a.violations.some((v) => v.operation === 'publish' && v.subject === 'changeover.agent.node-b.vote'));
  });

  it('cannot publish to orchestrator or command subjects either', async () => {
    for (const subject of ['changeover.node.node-b.commit', 'changeover.class.db.commit', 'changeover.events.rollout.started', 'changeover.registry.get-packages']) {
      a.nc.publish(subject, 'x');
      await waitFor(`publish violation on ${subject}`, () => a.violations.some((v) => v.operation === 'publish' && v.subject === subject));
    }
  });

  it('receives its own node commands and its class commands', async () => {
    const got: string[] = [];
    a.nc.subscribe('changeover.node.node-a.>', { callback: (_e, m) => void got.push(m.subject) });
    a.nc.subscribe('changeover.class.web.>', { callback: (_e, m) => void got.push(m.subject) });
    await a.nc.flush();
    svc.publish('changeover.node.node-a.propose', '{}');
    svc.publish('changeover.class.web.commit', '{}');
    await waitFor('own commands', () => got.length === 2);
    expect(got.sort()).toEqual(['changeover.class.web.commit', 'changeover.node.node-a.propose']);
  });

  it.each(['changeover.node.node-b.>', 'changeover.class.db.>', 'changeover.node.>', 'changeover.agent.>', '_INBOX.>', '_INBOX.node.node-b.>'])(
    'cannot subscribe to %s',
    async (subject) => {
      const sub = a.nc.subscribe(subject);
      const closed = await sub.closed;
      expect(closed).toBeInstanceOf(PermissionViolationError);
      expect((closed as PermissionViolationError).operation).toBe('subscription');
    },
  );

  it("does not get another node's or another class's commands", async () => {
    const got: string[] = [];
    const wide = a.nc.subscribe('changeover.node.*.propose', { callback: (e, m) => void (e ? undefined : got.push(m.subject)) });
    expect(await wide.closed).toBeInstanceOf(PermissionViolationError);
    const own = a.nc.subscribe('changeover.node.node-a.abort', { callback: (_e, m) => void got.push(m.subject) });
    await a.nc.flush();
    svc.publish('changeover.node.node-b.abort', '{}');
    svc.publish('changeover.class.db.abort', '{}');
    svc.publish('changeover.node.node-a.abort', '{}');
    await waitFor('own abort', () => got.includes('changeover.node.node-a.abort'));
    expect(got).toEqual(['changeover.node.node-a.abort']);
    own.unsubscribe();
  });

  it('makes a request and gets the reply in its own inbox', async () => {
    const responder = svc.subscribe('changeover.agent.*.inventory', { callback: (_e, m: Msg) => void m.respond(`ack ${m.subject}`) });
    await svc.flush();
    const reply = await a.nc.request('changeover.agent.node-a.inventory', '{}', { timeout: 5_000 });
    expect(reply.string()).toBe('ack changeover.agent.node-a.inventory');
    responder.unsubscribe();
  });

  it('answers a command sent as a request (once per request)', async () => {
    const sub = a.nc.subscribe('changeover.node.node-a.validate', { callback: (_e, m) => void m.respond('valid') });
    await a.nc.flush();
    const reply = await svc.request('changeover.node.node-a.validate', '{}', { timeout: 5_000 });
    expect(reply.string()).toBe('valid');
    sub.unsubscribe();
  });

  it('without its inbox prefix, a node cannot hear replies at all', async () => {
    const creds = await mintNodeCredentials(server.authority, { nodeId: 'node-c', classId: 'web' });
    const nc = await connect({ servers: server.nats.url, reconnect: false, authenticator: credsAuthenticator(new TextEncoder().encode(creds.creds)) });
    try {
      await expect(nc.request('changeover.agent.node-c.inventory', '{}', { timeout: 2_000 })).rejects.toThrow(/Permissions Violation for Subscription/);
    } finally {
      await nc.close();
    }
  });

  it('is refused with credentials from another authority', async () => {
    const forged = await mintNodeCredentials(createAuthority(), { nodeId: 'node-a', classId: 'web' });
    await expect(connectNode(server.nats.url, forged)).rejects.toThrow(/Authorization Violation/i);
  });
});
