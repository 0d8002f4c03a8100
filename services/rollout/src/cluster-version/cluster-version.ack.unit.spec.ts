import { describe, expect, it } from '@jest/globals';
import { ChangeoverError, type ValidatedReport } from '@changeover/contracts';
import { createLogger, registry } from '@changeover/telemetry';
import type { EventLog } from '../workflow/rollout.runner.js';
import { CLUSTER_STREAM, cev } from './cluster-version.decider.js';
import { ClusterVersionService, type ClusterVersionDeps } from './cluster-version.service.js';

// A member's acknowledgement that cannot be recorded on arrival is logged and counted, never thrown
// away silently, and the driver is woken to ask again (its validate rounds record what was missed).

const at = '2026-12-07T05:00:00.000Z';
const requested = cev('cluster-version.adjust-requested', { adjustmentId: 'a1', version: 2, by: 'ops', groups: ['orders'], at });

function store(append: EventLog['append']): EventLog {
  return {
    append,
    readStream: async (streamId) => (streamId === CLUSTER_STREAM ? [{ id: 'e1', streamId, streamPosition: 1, globalPosition: 1n, type: requested.type, data: requested.data, metadata: {}, createdAt: new Date(at) }] : []),
  };
}

function service(events: EventLog) {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger('cluster-version-test', { level: 'info', destination: { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) } });
  const svc = new ClusterVersionService({ store: events, log, clock: () => new Date(at) } as unknown as ClusterVersionDeps);
  return { svc, lines };
}

const ack: ValidatedReport = { nodeId: 'n1', requestId: 'adjust-a1', groups: [{ groupId: 'orders', memberId: 'm1', lastSequence: 3, activeVersion: 2, members: ['m1'] }] };
const failures = async (code: string) => ((await registry.getSingleMetric('changeover_cluster_version_ack_failures_total')!.get()).values.find((v) => v.labels['code'] === code)?.value ?? 0);

describe('acknowledgements of an adjustment', () => {
  it('records a member that switched', async () => {
    const appended: unknown[] = [];
    const { svc } = service(store(async (_s, _v, events) => (appended.push(...events), { nextExpectedVersion: 2 })));
    await svc.onAck(ack);
    expect(appended).toEqual([expect.objectContaining({ type: 'cluster-version.member-acknowledged', data: expect.objectContaining({ memberId: 'm1' }) })]);
  });

  it('logs with context and counts by code an acknowledgement the store refuses, and wakes the driver', async () => {
    const { svc, lines } = service(store(async () => Promise.reject(new ChangeoverError('UNAVAILABLE', 'event store down'))));
    let woken = 0;
    (svc as unknown as { wake: () => void }).wake = () => void woken++;
    const before = await failures('UNAVAILABLE');
    await expect(svc.onAck(ack)).resolves.toBeUndefined();
    expect(await failures('UNAVAILABLE')).toBe(before + 1);
    expect(woken).toBe(1);
    expect(lines).toEqual([expect.objectContaining({ level: 'warn', code: 'UNAVAILABLE', nodeId: 'n1', adjustmentId: 'a1', members: 1, msg: 'acknowledgement not recorded; the next validate round takes it again' })]);
  });

  it('counts an unexpected error as INTERNAL', async () => {
    const { svc } = service(store(async () => Promise.reject(new Error('connection reset'))));
    const before = await failures('INTERNAL');
    await svc.onAck(ack);
    expect(await failures('INTERNAL')).toBe(before + 1);
  });
});
