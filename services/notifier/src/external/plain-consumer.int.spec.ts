import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
// The consumer below uses nothing of ours: only the public NATS clients, as an outside system would.
import { connect } from '@nats-io/transport-node';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { startNats, type TestNats } from '@changeover/test-kit';
import { eventPublisher, sample, type EventPublisher } from '../testing/events.js';

let nats: TestNats;
let events: EventPublisher;

beforeAll(async () => {
  nats = await startNats();
  events = await eventPublisher(nats.url);
}, 60_000);

afterAll(async () => {
  await events?.close();
  await nats?.stop();
}, 60_000);

interface Received {
  id: string;
  type: string;
  subject: string;
  changeoversequence: number;
}

/** What an outside system writes: a durable pull consumer on CHANGEOVER_EVENTS, acking each event once handled. */
async function readSome(url: string, durable: string, rolloutId: string, count: number): Promise<Received[]> {
  const nc = await connect({ servers: url });
  try {
    const jsm = await jetstreamManager(nc);
    await jsm.consumers.info('CHANGEOVER_EVENTS', durable).catch(() =>
      jsm.consumers.add('CHANGEOVER_EVENTS', { durable_name: durable, ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All, filter_subject: 'changeover.events.rollout.>' }),
    );
    const consumer = await jetstream(nc).consumers.get('CHANGEOVER_EVENTS', durable);
    const out: Received[] = [];
    while (out.length < count) {
      const m = await consumer.next({ expires: 5000 });
      if (!m) break;
      const ce = m.json<Received>();
      if (ce.subject === rolloutId) out.push(ce);
      m.ack();
    }
    return out;
  } finally {
    await nc.close();
  }
}

describe('an outside system reading CHANGEOVER_EVENTS with a plain NATS client', () => {
  it('reads a whole rollout in order, each event once, across a restart of its own consumer', async () => {
    const r = 'r-outside';
    const at = 'now';
    const rollout = [
      events.cloudEvent('rollout.proposed', { rolloutId: r, attempt: 0, nodes: 2, dryRun: false, at }, `rollout-${r}`),
      events.cloudEvent('rollout.votes-recorded', { rolloutId: r, attempt: 0, votes: [{ nodeId: 'node-7', decision: 'veto', verdicts: [{ processId: 'billing-worker', decision: 'veto', reason: 'PROCESS_BUSY', message: 'closing the month' }] }], at }, `rollout-${r}`),
      events.cloudEvent('rollout.blocked', sample.blocked(r), `rollout-${r}`),
      events.cloudEvent('rollout.forced', { rolloutId: r, by: 'alice', reason: 'month closed', at }, `rollout-${r}`),
      events.cloudEvent('rollout.accepted', { rolloutId: r, attempt: 0, nodes: 2, excluded: 0, at }, `rollout-${r}`),
      events.cloudEvent('rollout.wave-started', { rolloutId: r, wave: 0, nodes: ['node-7', 'node-8'], part: 0, parts: 1, at }, `rollout-${r}`),
      events.cloudEvent('rollout.node-progressed', { rolloutId: r, nodeId: 'node-7', phase: 'switching', at }, `rollout-${r}`),
      events.cloudEvent('rollout.completed', sample.completed(r), `rollout-${r}`),
    ];
    for (const [i, ce] of rollout.entries()) {
      await events.publish(ce);
      // Another rollout interleaves; the relay also re-publishes after a crash (same Nats-Msg-Id: dropped by the stream).
      await events.publish(events.cloudEvent('rollout.node-progressed', sample.progressed('r-other')));
      if (i % 3 === 0) await events.publish(ce);
    }

    const first = await readSome(nats.url, 'billing-system', r, 3);
    const rest = await readSome(nats.url, 'billing-system', r, rollout.length - 3);
    const got = [...first, ...rest];

    expect(got.map((e) => e.id)).toEqual(rollout.map((e) => e.id));
    expect(got.map((e) => e.type)).toEqual(rollout.map((e) => e.type));
    const seq = got.map((e) => e.changeoversequence);
    expect(seq).toEqual([...seq].sort((a, b) => a - b));
    expect(new Set(got.map((e) => e.id)).size).toBe(rollout.length);
  });
});
