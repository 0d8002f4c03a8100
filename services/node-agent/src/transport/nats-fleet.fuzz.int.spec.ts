import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { COMMAND_SCHEMAS, decode, encode, subjects, VoteReport, type NodeCommand } from '@changeover/contracts';
import { mutatedPayload, processFaults, startNats, waitFor, type TestNats } from '@changeover/test-kit';
import { createLog } from '../log.js';
import { CounterRegistry } from '../metrics.js';
import { createSimCores } from '../simulate/sim-fleet.js';
import { manifestOf, moduleOf, selectedOf } from '../testing/packages.js';
import { NatsFleet, natsSink } from './nats-fleet.js';

// Property-based fuzzing of every NATS command handler of the agent (propose, commit, abort,
// regress, validate on the node's own and its class subjects): every message is handled or
// rejected with a typed, counted code, nothing crashes, and the node still votes afterwards.

const RUNS = 60;
const MAX = 8192;
let nats: TestNats;
let nc: NatsConnection;
let fleet: NatsFleet;
let faults: ReturnType<typeof processFaults>;
const counters = new CounterRegistry();
const votes: VoteReport[] = [];
const node = 'fz-1';
const web = manifestOf('web', '1.0.0', [moduleOf('web-bin', '1.0.0', 'web v1')]);

beforeAll(async () => {
  faults = processFaults();
  nats = await startNats();
  nc = await connect({ servers: nats.url });
  nc.subscribe(subjects.agent(node, 'vote'), { callback: (_e, m) => void votes.push(decode(VoteReport, m.data)) });
  const log = createLog('silent');
  const cores = createSimCores({ count: 1, classId: 'fz', prefix: 'fz', vetoRate: 0, slowRate: 0, failRate: 0, armRatio: 0, agentVersion: '1.0.0', clusterVersions: { min: 1, max: 2 }, heartbeatMs: 60_000, counters, log }, natsSink(nc, log));
  for (const c of cores) await c.start();
  fleet = new NatsFleet(nc, cores, { nodeSubjects: 'own', heartbeatMs: 60_000, counters, log, maxMessageBytes: MAX });
  fleet.start();
  await nc.flush();
});

afterAll(async () => {
  await fleet?.stop();
  await nc?.close();
  await nats?.stop();
  faults?.stop();
});

const rejected = (command: string) => counters.get('agent_commands_rejected_total', { command });
const seen = (command: string) => counters.get('agent_commands_total', { command }) + rejected(command);

describe('agent command handlers under fuzzed input', () => {
  const examples: Record<Exclude<NodeCommand, 'validate'> | 'validate', unknown[]> = {
    propose: [{ rolloutId: 'r1', attempt: 0, nodeId: node, packages: [selectedOf(web)], voteTimeoutMs: 10_000 }, { rolloutId: 'r2', attempt: 1, classId: 'fz', packages: [selectedOf(web)], voteTimeoutMs: 10_000, dryRun: true }],
    commit: [{ rolloutId: 'r1', attempt: 0, nodeId: node, packages: [{ manifest: web }], changeoverTimeoutMs: 30_000 }],
    abort: [{ rolloutId: 'r1', attempt: 0, nodeId: node, reason: 'stop' }],
    regress: [{ rolloutId: 'r1', attempt: 0, nodeId: node, to: { kind: 'previous' }, reason: 'back' }, { rolloutId: 'r1', attempt: 0, classId: 'fz', to: { kind: 'version', package: 'web', version: '1.0.0' } }],
    validate: [{ requestId: 'q1', groups: ['g1'] }],
  };

  for (const [command, valid] of Object.entries(examples) as [NodeCommand, unknown[]][]) {
    it(`${command}: every mutated command is handled or rejected with a typed, counted code; nothing crashes`, async () => {
      let refusals = 0;
      await fc.assert(
        fc.asyncProperty(mutatedPayload(valid), fc.constantFrom(subjects.node(node, command), subjects.class('fz', command)), async (payload, subject) => {
          let decodes = payload.length <= MAX;
          try {
            decode(COMMAND_SCHEMAS[command], payload);
          } catch {
            decodes = false;
          }
          const before = seen(command);
          const rejectedBefore = rejected(command);
          nc.publish(subject, payload);
          await waitFor(`${command} handled or rejected`, () => seen(command) > before, { timeoutMs: 15_000 });
          if (!decodes) {
            refusals++;
            expect(rejected(command)).toBeGreaterThan(rejectedBefore);
          }
        }),
        { numRuns: RUNS },
      );
      expect(refusals).toBeGreaterThan(0);
      expect(counters.get('agent_commands_rejected_total', { command, code: 'INTERNAL' })).toBe(0);
      expect(faults.faults).toEqual([]);
    });
  }

  it('rejects a command over the size limit with TOO_LARGE and takes one at it', async () => {
    const base = { rolloutId: 'size-ok', attempt: 0, nodeId: node, reason: '' };
    const at = (n: number) => {
      const text = JSON.stringify(base);
      return new TextEncoder().encode(text + ' '.repeat(n - text.length));
    };
    const tooLarge = counters.get('agent_commands_rejected_total', { command: 'abort', code: 'TOO_LARGE' });
    const handled = counters.get('agent_commands_total', { command: 'abort' });
    nc.publish(subjects.node(node, 'abort'), at(MAX));
    nc.publish(subjects.node(node, 'abort'), at(MAX + 1));
    await waitFor('both abort commands seen', () => counters.get('agent_commands_total', { command: 'abort' }) === handled + 1 && counters.get('agent_commands_rejected_total', { command: 'abort', code: 'TOO_LARGE' }) === tooLarge + 1);
  });

  it('still votes on a valid proposal after the fuzzing', async () => {
    nc.publish(subjects.node(node, 'propose'), encode({ rolloutId: 'after-fuzz', attempt: 0, nodeId: node, packages: [selectedOf(web)], voteTimeoutMs: 10_000 }));
    await waitFor('a vote on after-fuzz', () => votes.some((v) => v.rolloutId === 'after-fuzz'), { timeoutMs: 15_000 });
    expect(faults.faults).toEqual([]);
  });
});
