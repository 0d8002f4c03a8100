import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { installTestTracing, traceIdOf, type TestTracing } from '@changeover/telemetry';
import { assignment, createCommand, vote } from '../testing/fixtures.js';
import { memoryLog, memoryRunner as runner } from '../testing/memory-log.js';

let tracing: TestTracing;
beforeAll(() => {
  tracing = installTestTracing();
});
afterAll(async () => {
  await tracing.shutdown();
});
beforeEach(() => tracing.reset());

describe('one trace per rollout', () => {
  it('opens a root span at creation, stores its traceparent, and a restarted runner joins the same trace', async () => {
    const store = memoryLog();
    const first = runner(store, []);
    await first.apply('r1', { ...createCommand([assignment(['n1', 'n2'])]), now: new Date() }, 'alice');
    const root = tracing.spans().find((s) => s.name === 'rollout')!;
    expect(root.parentSpanContext).toBeUndefined();
    expect(root.attributes['changeover.rollout_id']).toBe('r1');
    const traceId = root.spanContext().traceId;
    expect(traceIdOf(store.events[0]!.metadata.traceparent)).toBe(traceId);
    first.close();

    // A new process: it adopts the rollout from the stored events and re-sends the proposal.
    const sent: string[] = [];
    const second = runner(store, sent);
    await second.adopt('r1');
    expect(sent).toEqual(['propose']);
    const propose = tracing.spans().find((s) => s.name === 'rollout.propose')!;
    expect(propose.spanContext().traceId).toBe(traceId);
    expect(propose.parentSpanContext?.spanId).toBe(root.spanContext().spanId);

    // Votes close the tally: a span from the proposal to the decision, one event per veto.
    await second.submit('r1', { type: 'RecordVote', now: new Date(), report: vote('n1') });
    await second.submit('r1', { type: 'RecordVote', now: new Date(), report: vote('n2', 'veto') });
    const tally = tracing.spans().find((s) => s.name === 'rollout.vote-tally')!;
    expect(tally.spanContext().traceId).toBe(traceId);
    expect(tally.attributes['changeover.outcome']).toBe('blocked');
    expect(tally.events.map((e) => [e.name, e.attributes?.['changeover.node_id'], e.attributes?.['changeover.reason']])).toEqual([['veto', 'n2', 'PROCESS_BUSY']]);

    // An operator's command on the rollout is a span of the same trace, and so are the events it appends.
    await second.apply('r1', { type: 'Force', now: new Date(), by: 'alice', reason: 'window' }, 'alice');
    const force = tracing.spans().find((s) => s.name === 'rollout.force')!;
    expect(force.parentSpanContext?.spanId).toBe(root.spanContext().spanId);
    expect(store.events.every((e) => traceIdOf(e.metadata.traceparent) === traceId)).toBe(true);
    expect(tracing.spans().filter((s) => s.name === 'rollout.commit-wave').every((s) => s.spanContext().traceId === traceId)).toBe(true);
    second.close();
  });
});
