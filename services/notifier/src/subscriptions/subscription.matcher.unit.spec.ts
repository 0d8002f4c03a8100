import { describe, expect, it } from '@jest/globals';
import { CreateSubscriptionRequest, type EventData } from '@changeover/contracts';
import { eventFacts, type EventContext } from './event-context.js';
import { matches } from './subscription.matcher.js';

const blocked: EventData<'rollout.blocked'> = {
  rolloutId: 'r1',
  attempt: 1,
  vetoes: [
    { nodeId: 'n1', processId: 'p', reason: 'PROCESS_BUSY', message: 'busy' },
    { nodeId: 'n2', processId: 'q', reason: 'CUSTOM', message: 'no' },
  ],
  vetoCount: 2,
  vetoingNodes: 2,
  at: 'now',
};
const ctx = (over: Partial<EventContext> = {}): EventContext => ({ ...eventFacts('rollout.blocked', blocked), nodeLabels: [], ...over });

describe('event facts', () => {
  it('finds the rollout, the nodes and classes wherever the event names them', () => {
    expect(eventFacts('rollout.blocked', blocked)).toEqual({ type: 'rollout.blocked', severity: 'warning', rolloutId: 'r1', nodeIds: ['n1', 'n2'], classIds: [] });
    const refused = eventFacts('cluster-version.adjust-refused', { version: 2, by: 'a', blockers: [{ code: 'NODE_INCAPABLE', nodeId: 'n9', message: 'x' }], at: 'now' });
    expect(refused.nodeIds).toEqual(['n9']);
    expect(eventFacts('rollout.wave-started', { rolloutId: 'r2', wave: 0, nodes: ['a', 'b'], at: 'now' }).nodeIds).toEqual(['a', 'b']);
    expect(eventFacts('node.enrolled', { nodeId: 'n1', classId: 'edge', processorType: 'arm64', characteristics: { arch: 'arm64', os: 'linux', memoryMb: 1, labels: {} }, at: 'now' }).classIds).toEqual(['edge']);
  });
});

describe('subscription filter', () => {
  it('without event types, selects the events notified by default only', () => {
    expect(matches({}, ctx())).toBe(true);
    expect(matches({}, { ...ctx(), type: 'rollout.node-progressed', severity: 'info' })).toBe(false);
    expect(matches({ eventTypes: ['*'] }, { ...ctx(), type: 'rollout.node-progressed', severity: 'info' })).toBe(true);
  });

  it('narrows by event type, rollout, class, label and severity', () => {
    expect(matches({ eventTypes: ['rollout.paused'] }, ctx())).toBe(false);
    expect(matches({ rolloutIds: ['r1'] }, ctx())).toBe(true);
    expect(matches({ rolloutIds: ['r2'] }, ctx())).toBe(false);
    expect(matches({ classIds: ['edge'] }, ctx())).toBe(false);
    expect(matches({ classIds: ['edge'] }, ctx({ classIds: ['core', 'edge'] }))).toBe(true);
    expect(matches({ labels: { site: 'paris' } }, ctx({ nodeLabels: [{ site: 'lyon' }, { site: 'paris', rack: '3' }] }))).toBe(true);
    expect(matches({ labels: { site: 'paris', rack: '4' } }, ctx({ nodeLabels: [{ site: 'paris', rack: '3' }] }))).toBe(false);
    expect(matches({ minSeverity: 'warning' }, ctx())).toBe(true);
    expect(matches({ minSeverity: 'critical' }, ctx())).toBe(false);
  });

  it('refuses an unknown event type or a bad URL when the subscription is created', () => {
    const bad = CreateSubscriptionRequest.safeParse({ name: 'x', channel: { type: 'webhook', url: 'ftp://h/x' }, filter: { eventTypes: ['rollout.exploded'] } });
    expect(bad.success).toBe(false);
    expect(bad.error?.issues.map((i) => i.path.join('.')).sort()).toEqual(['channel.url', 'filter.eventTypes.0']);
  });
});
