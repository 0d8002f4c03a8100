import { describe, expect, it } from '@jest/globals';
import { MODULE_BUCKET, isChangeoverError } from '@changeover/contracts';
import { assertService, nodeInboxPrefix, nodePermissions, objectStoreReadPermissions } from './node.permissions.js';

const STREAM = `OBJ_${MODULE_BUCKET}`;
/** Read-only access to the group logs the agent opens at start-up (no consumers, no appends). */
const GROUP_READS = ['$JS.API.INFO', '$JS.API.STREAM.INFO.CHANGEOVER_GROUPS', '$JS.API.STREAM.MSG.GET.CHANGEOVER_GROUPS', '$JS.API.STREAM.INFO.KV_changeover-cluster', '$JS.API.STREAM.MSG.GET.KV_changeover-cluster'];

function expectInvalidId(fn: () => unknown) {
  try {
    fn();
  } catch (e) {
    expect(isChangeoverError(e, 'INVALID_ID')).toBe(true);
    return;
  }
  throw new Error('expected INVALID_ID');
}

describe('nodePermissions', () => {
  it('publishes only its own reports and reads the module store by message-get', () => {
    const p = nodePermissions('node-a', 'web');
    expect(p.pub.allow).toEqual(['changeover.agent.node-a.>', `$JS.API.STREAM.MSG.GET.${STREAM}`, ...GROUP_READS]);
    expect(p.pub.deny).toEqual([`$O.${MODULE_BUCKET}.>`]);
  });

  it('subscribes only to its own node subjects, its class and its own inbox', () => {
    const p = nodePermissions('node-a', 'web');
    expect(p.sub.allow).toEqual(['changeover.node.node-a.>', 'changeover.class.web.>', '_INBOX.node.node-a.>']);
    expect(p.sub.deny).toEqual([]);
  });

  it('may answer each message it receives once (command replies)', () => {
    expect(nodePermissions('node-a', 'web').resp).toEqual({ max: 1, ttlMs: 120_000 });
  });

  it('never allows a wildcard that reaches another node, class or the JetStream API at large', () => {
    const p = nodePermissions('node-a', 'web');
    for (const s of [...p.pub.allow, ...p.sub.allow]) {
      expect(s.startsWith('changeover.agent.*')).toBe(false);
      expect(s).not.toMatch(/^(changeover|_INBOX|\$JS\.API)\.>$/);
      expect(s).not.toContain('*');
    }
    expect(p.pub.allow.some((s) => s.startsWith('$JS.API.CONSUMER'))).toBe(false);
    expect(p.pub.allow.some((s) => s.startsWith('$O.'))).toBe(false);
  });

  it('in consumer mode allows what the nats.js reader needs and still never writes', () => {
    const p = nodePermissions('node-a', 'web', { moduleReads: 'consumer' });
    expect(p.pub.allow).toEqual([
      'changeover.agent.node-a.>',
      '$JS.API.INFO',
      `$JS.API.STREAM.INFO.${STREAM}`,
      `$JS.API.STREAM.MSG.GET.${STREAM}`,
      `$JS.API.CONSUMER.CREATE.${STREAM}.>`,
      ...GROUP_READS.slice(1),
    ]);
    expect(p.pub.allow.some((s) => /STREAM\.(CREATE|UPDATE|DELETE|PURGE)|MSG\.DELETE|CONSUMER\.DELETE|DURABLE/.test(s))).toBe(false);
    expect(p.pub.deny).toEqual([`$O.${MODULE_BUCKET}.>`]);
  });

  it('uses another bucket when told', () => {
    expect(nodePermissions('n1', 'c1', { bucket: 'other' }).pub.allow).toContain('$JS.API.STREAM.MSG.GET.OBJ_other');
  });

  it.each(['a.b', 'a*', '>', 'a b', '', 'x'.repeat(65)])('refuses the unsafe node id %j with INVALID_ID', (id) => {
    expectInvalidId(() => nodePermissions(id, 'web'));
    expectInvalidId(() => nodeInboxPrefix(id));
  });

  it.each(['web.>', '*', 'a b'])('refuses the unsafe class id %j with INVALID_ID', (id) => {
    expectInvalidId(() => nodePermissions('node-a', id));
  });

  it('refuses an unsafe bucket name and an unknown read mode', () => {
    expectInvalidId(() => objectStoreReadPermissions('a.>'));
    expect(() => objectStoreReadPermissions(MODULE_BUCKET, 'write' as never)).toThrow(/unknown module read mode/);
  });

  it('keeps node inboxes apart from the 22-character nuid inboxes of services', () => {
    expect(nodeInboxPrefix('n1')).toBe('_INBOX.node.n1');
  });
});

describe('assertService', () => {
  it('accepts the known services and refuses anything else with INVALID_ID', () => {
    expect(assertService('registry')).toBe('registry');
    expect(assertService('rollout')).toBe('rollout');
    expect(assertService('notifier')).toBe('notifier');
    expectInvalidId(() => assertService('node-a'));
    expectInvalidId(() => assertService(42));
  });
});
