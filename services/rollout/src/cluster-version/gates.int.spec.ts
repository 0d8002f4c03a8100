import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { subjects, ValidateCommand, type GroupView, type ValidatedReport } from '@changeover/contracts';
import { serveRpc, type RpcServer } from '@changeover/messaging';
import { createLogger, registry } from '@changeover/telemetry';
import { startNats, type TestNats } from '@changeover/test-kit';
import { blockersFor, validateRound } from './gates.js';

// A validate round over a private NATS: a node that answers is reached, one that does not is not
// reached, and its silence is logged and counted instead of dropped.

describe('validate round', () => {
  let nats: TestNats;
  let nc: NatsConnection;
  let served: RpcServer;

  beforeAll(async () => {
    nats = await startNats();
    nc = await connect({ servers: nats.url });
    served = serveRpc(nc, subjects.node('up', 'validate'), ValidateCommand, async (cmd): Promise<ValidatedReport> => ({ nodeId: 'up', requestId: cmd.requestId, groups: [{ groupId: 'orders', memberId: 'm-up', lastSequence: 2, activeVersion: 1, members: ['m-up', 'm-down'] }] }));
    await nc.flush();
  });

  afterAll(async () => {
    await served.stop();
    await nc.close();
    await nats.stop();
  });

  it('maps a silent node to null, logs it with the node and request, counts it by code, and names its member not reached', async () => {
    const groups: GroupView[] = [{ groupId: 'orders', activeVersion: 1, lastSequence: 2, lastAdjustmentId: null, members: [{ memberId: 'm-up', nodeId: 'up', joinedAt: 1 }, { memberId: 'm-down', nodeId: 'down', joinedAt: 2 }] }];
    const lines: Record<string, unknown>[] = [];
    const log = createLogger('gates-test', { level: 'warn', destination: { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) } });
    const total = async () => (await registry.getSingleMetric('changeover_cluster_version_validate_unanswered_total')!.get()).values.reduce((n, v) => n + v.value, 0);
    const before = await total();
    const reports = await validateRound(nc, groups, 'check-1', 500, log);
    expect(reports.get('up')?.groups.map((g) => g.memberId)).toEqual(['m-up']);
    expect(reports.get('down')).toBeNull();
    expect(await total()).toBe(before + 1);
    expect(lines).toEqual([expect.objectContaining({ level: 'warn', msg: 'validate not answered', nodeId: 'down', requestId: 'check-1', code: expect.any(String) })]);
    expect(blockersFor(1, [], groups, reports, 500)).toEqual([expect.objectContaining({ code: 'GROUP_PARTITIONED', groupId: 'orders', members: ['m-down'] })]);
  });
});
