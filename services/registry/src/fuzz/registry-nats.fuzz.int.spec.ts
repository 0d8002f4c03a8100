import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { encode, subjects, type AgentReport } from '@changeover/contracts';
import { putImageUpload } from '@changeover/messaging';
import { waitFor } from '@changeover/test-kit';
import { metricSum, mutatedPayload } from '../testing/fuzz.mutations.js';
import { enrollment, errorBodyProblem, fuzzImage, fuzzPackage, heartbeatReport, helloReport, inventoryReport, processFaults, scrape, seed } from '../testing/fuzz.setup.js';
import { publishRequest, sign, startTestRegistry, type TestRegistry } from '../testing/registry.fixtures.js';

// Property-based fuzzing of every NATS entry point of the registry: mutated requests on
// changeover.registry.<op> and mutated agent reports. Nothing crashes, every refusal is a typed,
// counted error, and the service still answers a valid request afterwards.
let t: TestRegistry;
let faults: ReturnType<typeof processFaults>;
const RUNS = 60;
const FUZZ_UPLOAD = 'fuzz-image';

beforeAll(async () => {
  faults = processFaults();
  t = await startTestRegistry({ REGISTRY_MAX_IMAGE_BYTES: '1000000' });
  await seed(t);
});

afterAll(async () => {
  faults?.stop();
  await t?.stop();
});

type Reply = { ok: true; result: unknown } | { ok: false; error: unknown };

async function request(op: string, payload: Uint8Array): Promise<Reply> {
  const msg = await t.nc.request(subjects.registry(op as Parameters<typeof subjects.registry>[0]), payload, { timeout: 15_000 });
  return JSON.parse(new TextDecoder().decode(msg.data)) as Reply;
}

/** Errors answered on `op` as counted in /metrics: malformed (messaging layer) plus refused by the handler. */
async function countedErrors(op: string): Promise<number> {
  const text = await scrape(t);
  return metricSum(text, 'changeover_rejected_messages_total', { subject_kind: 'registry' }) + metricSum(text, 'changeover_registry_rpc_rejected_total', { op });
}

describe('registry NATS request/reply under fuzzed input', () => {
  const ref = { name: 'fz', version: '1.0.0' };
  const examples: Record<string, () => Promise<unknown[]> | unknown[]> = {
    'select-modules': () => [{ packages: [ref], nodes: ['fz-1'], classes: ['fz-web'] }, { packages: [ref] }],
    'get-packages': () => [{ packages: [ref] }],
    'publish-package': () => [publishRequest(sign(fuzzPackage), fuzzPackage.blobs), publishRequest(sign(fuzzPackage), new Map())],
    'list-packages': () => [{ name: 'fz', limit: 10 }, {}],
    'list-nodes': () => [{ classId: 'fz-web', status: 'stale', label: 'zone=a', nodeIds: ['fz-1'], limit: 10, after: 'a' }, {}],
    'provided-apis': () => [{ consumes: ['fz-api@^1'], excludeClasses: ['fz-web'], excludeNodes: ['fz-1'] }, { consumes: ['fz-api@1.0.0'] }],
    'enroll-node': () => [enrollment],
    'import-image': async () => [{ upload: await putImageUpload(t.nc, await fuzzImage(), { name: FUZZ_UPLOAD }) }],
    'get-class': () => [{ classId: 'fz-web' }],
    'set-class': () => [{ classId: 'fz-web', packages: [ref], description: 'fuzz', by: 'ops' }],
  };

  for (const [op, make] of Object.entries(examples)) {
    it(`${op}: every mutated request gets a typed answer, refusals are counted, the op still works`, async () => {
      const valid = await make();
      const before = await countedErrors(op);
      let errors = 0;
      await fc.assert(
        fc.asyncProperty(mutatedPayload(valid), async (payload) => {
          const reply = await request(op, payload);
          if (reply.ok) return;
          errors++;
          expect(errorBodyProblem(reply.error)).toBeNull();
        }),
        { numRuns: RUNS },
      );
      expect(errors).toBeGreaterThan(0);
      expect((await countedErrors(op)) - before).toBe(errors);
      // A successful import consumes its upload: put it back for the final, valid request.
      if (op === 'import-image') await putImageUpload(t.nc, await fuzzImage(), { name: FUZZ_UPLOAD });
      const after = await request(op, encode(valid[0]));
      expect(after).toMatchObject({ ok: true });
      expect(faults.faults).toEqual([]);
    });
  }
});

describe('the registry handlers beside changeover.registry.<op> under fuzzed input', () => {
  const ref = { name: 'fz', version: '1.0.0' };
  const ask = async (subject: string, payload: Uint8Array): Promise<Reply> => JSON.parse(new TextDecoder().decode((await t.nc.request(subject, payload, { timeout: 15_000 })).data)) as Reply;

  it("get-packages on a node's own subject: every mutated request gets a typed answer, refusals are counted, it still works", async () => {
    const subject = subjects.agentRequest('fz-1', 'get-packages');
    const counted = async () => {
      const text = await scrape(t);
      return metricSum(text, 'changeover_rejected_messages_total', { subject_kind: 'agent' }) + metricSum(text, 'changeover_registry_rpc_rejected_total', { op: 'agent-get-packages' });
    };
    const before = await counted();
    let errors = 0;
    await fc.assert(
      fc.asyncProperty(mutatedPayload([{ packages: [ref] }]), async (payload) => {
        const reply = await ask(subject, payload);
        if (reply.ok) return;
        errors++;
        expect(errorBodyProblem(reply.error)).toBeNull();
      }),
      { numRuns: RUNS },
    );
    expect(errors).toBeGreaterThan(0);
    expect((await counted()) - before).toBe(errors);
    expect(await ask(subject, encode({ packages: [ref] }))).toMatchObject({ ok: true });
    expect(faults.faults).toEqual([]);
  });

  it('revoke-node without a NATS authority: every request, valid or mutated, is a typed refusal, counted', async () => {
    const valid = { nodeId: 'fz-1' };
    const before = await countedErrors('revoke-node');
    let errors = 0;
    await fc.assert(
      fc.asyncProperty(mutatedPayload([valid]), async (payload) => {
        const reply = await request('revoke-node', payload);
        expect(reply.ok).toBe(false);
        errors++;
        if (!reply.ok) expect(errorBodyProblem(reply.error)).toBeNull();
      }),
      { numRuns: RUNS },
    );
    expect(await request('revoke-node', encode(valid))).toMatchObject({ ok: false, error: { code: 'FEATURE_NOT_ACTIVE' } });
    expect((await countedErrors('revoke-node')) - before).toBe(errors + 1);
    expect(faults.faults).toEqual([]);
  });
});

describe('agent reports under fuzzed input', () => {
  const processed = (report: AgentReport) => t.registry.domain.counters.get('registry_agent_reports_total', { report }) + t.registry.domain.counters.get('registry_agent_reports_rejected_total', { report });
  const reports: [AgentReport, (nodeId: string) => unknown][] = [
    ['hello', helloReport],
    ['heartbeat', heartbeatReport],
    ['inventory', inventoryReport],
  ];

  for (const [report, example] of reports) {
    it(`${report}: every mutated report is processed or rejected with a typed, counted code; none crashes`, async () => {
      const scraped = async () => metricSum(await scrape(t), 'changeover_registry_agent_reports_rejected_total', { report });
      const rejectedBefore = await scraped();
      const counted = () => t.registry.domain.counters.get('registry_agent_reports_rejected_total', { report });
      const countedBefore = counted();
      await fc.assert(
        fc.asyncProperty(mutatedPayload([example('fz-1'), example('fz-r1')]), fc.constantFrom('fz-1', 'fz-r1', 'fz-other'), async (payload, subjectNode) => {
          const seen = processed(report);
          t.nc.publish(subjects.agent(subjectNode, report), payload);
          await waitFor(`${report} processed`, () => processed(report) === seen + 1, { timeoutMs: 15_000 });
        }),
        { numRuns: RUNS },
      );
      expect(t.registry.domain.counters.get('registry_agent_reports_rejected_total', { report, code: 'INTERNAL' })).toBe(0);
      expect(counted() - countedBefore).toBeGreaterThan(0);
      expect((await scraped()) - rejectedBefore).toBe(counted() - countedBefore);
      // Still alive: a valid report from a fresh node is taken.
      const node = `fz-live-${report}`;
      if (report !== 'hello') {
        t.nc.publish(subjects.agent(node, 'hello'), encode(helloReport(node)));
        await waitFor('fresh node enrolled', () => t.registry.domain.nodes.get(node).then(() => true, () => false), { timeoutMs: 15_000 });
      }
      const seen = t.registry.domain.counters.get('registry_agent_reports_total', { report });
      t.nc.publish(subjects.agent(node, report), encode(example(node)));
      await waitFor(`valid ${report} taken`, () => t.registry.domain.counters.get('registry_agent_reports_total', { report }) > seen, { timeoutMs: 15_000 });
      expect(faults.faults).toEqual([]);
    });
  }

  it('the process-level listener does see an unhandled rejection (so its silence above means something)', async () => {
    const probe = new Error('probe');
    const rejected = Promise.reject(probe);
    await waitFor('probe recorded', () => faults.faults.includes(probe));
    faults.faults.splice(faults.faults.indexOf(probe), 1);
    // Handled late: the runner, which saw it too, withdraws it on 'rejectionHandled'.
    await rejected.catch(() => undefined);
    await new Promise((r) => setImmediate(r));
  });
});
