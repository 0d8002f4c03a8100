import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { contextFromTraceparent, currentTraceIds, installTestTracing, NOOP_UNIT, sampledTraceparentOf, traceparentOf, unitTracer, type TestTracing, type UnitTracer } from '@changeover/telemetry';
import type { AgentCore, AnyCommand } from './agent-core.js';
import { traceUnit, vetoMetrics } from './agent-tracing.js';

const TRACE = '0af7651916cd43dd8448eb211c80319c';
const parent = contextFromTraceparent(`00-${TRACE}-b7ad6b7169203331-01`);
const propose: AnyCommand = { kind: 'propose', body: { rolloutId: 'r1', attempt: 0, packages: [], voteTimeoutMs: 1000, dryRun: false, forced: false } as never };
const core = (tracing?: UnitTracer) => ({ nodeId: 'n1', opts: { identity: { nodeId: 'n1', classId: 'web', processorType: 'x86_64' }, ...(tracing ? { tracing } : {}) }, record: () => undefined }) as unknown as AgentCore;

let tracing: TestTracing;
beforeAll(() => {
  tracing = installTestTracing();
});
afterAll(async () => {
  await tracing.shutdown();
});
beforeEach(() => tracing.reset());

describe('agent units of a rollout trace', () => {
  it('runs a command in the rollout context (log lines get its trace id) and exports a vetoed unit with its verdicts', async () => {
    let seen: string | undefined;
    await traceUnit(core(unitTracer({ ratio: 0 })), propose, parent, async (unit) => {
      seen = currentTraceIds()?.traceId;
      await unit.step('agent.vote', () => vetoMetrics([{ processId: 'db', decision: 'veto', reason: 'PROCESS_BUSY', message: 'busy' }, { processId: 'web', decision: 'accept' }], { dryRun: false, forced: false }, unit));
      unit.keep('veto');
    });
    expect(seen).toBe(TRACE);
    const [vote, unit] = tracing.spans();
    expect(unit!.name).toBe('agent.propose');
    expect(unit!.parentSpanContext?.spanId).toBe('b7ad6b7169203331');
    expect(vote!.events.map((e) => [e.attributes?.['changeover.process_id'], e.attributes?.['changeover.decision']])).toEqual([['db', 'veto'], ['web', 'accept']]);
  });

  it('drops an accepting node the ratio does not sample, and its reports go out unsampled in the same trace', async () => {
    let headers: { any?: string; sampled?: string } = {};
    await traceUnit(core(unitTracer({ ratio: 0 })), propose, parent, async (unit) => {
      await unit.step('agent.vote', () => undefined);
      headers = { any: traceparentOf(), sampled: sampledTraceparentOf() };
    });
    expect(tracing.spans()).toHaveLength(0);
    expect(headers).toEqual({ any: `00-${TRACE}-b7ad6b7169203331-00`, sampled: undefined });
  });

  it('a node the ratio picks reports sampled', async () => {
    let header: string | undefined;
    await traceUnit(core(unitTracer({ ratio: 1 })), propose, parent, async () => void (header = sampledTraceparentOf()));
    expect(header).toBe(`00-${TRACE}-b7ad6b7169203331-01`);
    expect(tracing.spans().map((s) => s.name)).toEqual(['agent.propose']);
  });

  it('without a tracer (a simulated fleet sampled at 0) enters no context and records nothing', async () => {
    let seen: unknown = 'unset';
    let given: unknown;
    await traceUnit(core(), propose, parent, async (unit) => {
      seen = currentTraceIds();
      given = unit;
      unit.keep('veto');
    });
    expect(seen).toBeUndefined();
    expect(given).toBe(NOOP_UNIT);
    expect(tracing.spans()).toHaveLength(0);
  });
});
