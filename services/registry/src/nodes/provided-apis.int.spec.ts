import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { canonicalJson, encode, ListNodesReply, ProvidedApisReply, subjects, type Inventory } from '@changeover/contracts';
import { waitFor } from '@changeover/test-kit';
import { digestOf, helloReport, startTestRegistry, type TestRegistry } from '../testing/registry.fixtures.js';

jest.setTimeout(60_000);

/** An inventory of one package providing `provides`. */
function providing(name: string, provides: string[]): Inventory {
  const active = [{ name, version: '1.0.0', modules: [], requires: {}, provides, consumes: [] }];
  return { active, previous: [], digest: digestOf(Buffer.from(canonicalJson(active))) };
}

describe('provided-apis on real NATS and Postgres', () => {
  let t: TestRegistry;
  const ask = (req: unknown) => t.rpc('provided-apis', req, ProvidedApisReply);

  beforeAll(async () => {
    t = await startTestRegistry();
    const nodes: [string, string, Inventory][] = [
      ['a-1', 'auth', providing('auth', ['auth-api@1.4.0', 'audit-api@2.0.0'])],
      ['a-2', 'auth', providing('auth', ['auth-api@1.4.0', 'audit-api@2.0.0'])],
      ['b-1', 'legacy', providing('auth-old', ['auth-api@0.9.0'])],
      ['w-1', 'web', providing('web', ['web-api@3.0.0'])],
    ];
    for (const [id, classId, inv] of nodes) t.nc.publish(subjects.agent(id, 'hello'), encode(helloReport(id, inv, { classId })));
    await waitFor('nodes enrolled', async () => {
      const listed = (await t.rpc('list-nodes', { nodeIds: nodes.map((n) => n[0]) }, ListNodesReply)).nodes;
      return listed.length === nodes.length && listed.every((n) => n.inventory !== null);
    });
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('answers the versions active nodes provide of the consumed API names only', async () => {
    expect(await ask({ consumes: ['auth-api@^1'] })).toEqual({ provided: ['auth-api@0.9.0', 'auth-api@1.4.0'] });
    expect(await ask({ consumes: ['auth-api@^1', 'web-api@^3'] })).toEqual({ provided: ['auth-api@0.9.0', 'auth-api@1.4.0', 'web-api@3.0.0'] });
    expect(await ask({ consumes: ['nothing-api@^1'] })).toEqual({ provided: [] });
  });

  it('leaves out the classes and nodes asked to be left out', async () => {
    expect(await ask({ consumes: ['auth-api@^1'], excludeClasses: ['auth'] })).toEqual({ provided: ['auth-api@0.9.0'] });
    expect(await ask({ consumes: ['auth-api@^1'], excludeNodes: ['a-1', 'b-1'] })).toEqual({ provided: ['auth-api@1.4.0'] });
    expect(await ask({ consumes: ['auth-api@^1'], excludeNodes: ['a-1', 'a-2', 'b-1'] })).toEqual({ provided: [] });
  });

  it('counts no node that is not active', async () => {
    await t.registry.db.query(`UPDATE registry_nodes SET last_heartbeat_at = now() - interval '1 day' WHERE node_id = 'b-1'`);
    await t.registry.db.query(`UPDATE registry_nodes SET decommissioned_at = now() WHERE node_id = 'a-2'`);
    expect(await ask({ consumes: ['auth-api@^1'], excludeNodes: ['a-1'] })).toEqual({ provided: [] });
    expect(await ask({ consumes: ['auth-api@^1'] })).toEqual({ provided: ['auth-api@1.4.0'] });
  });

  it('refuses a malformed request with VALIDATION_FAILED', async () => {
    await expect(ask({ consumes: [] })).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
    await expect(ask({ consumes: ['not an api'] })).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
  });
});
