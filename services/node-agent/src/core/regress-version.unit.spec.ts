import { describe, expect, it } from '@jest/globals';
import { ChangeoverError, type ProgressReport } from '@changeover/contracts';
import { createLog } from '../log.js';
import { CounterRegistry } from '../metrics.js';
import type { NodeState } from '../model/state.js';
import { SimRuntime, SimStore, simFetcher } from '../simulate/sim-runtime.js';
import { manifestOf, moduleOf } from '../testing/packages.js';
import { AgentCore } from './agent-core.js';
import type { ManifestSource } from './ports.js';

// A regress to a version the node does not keep takes the manifest from the registry and installs
// the module the shared selection picks for this node; a registry that does not answer is not "not found".

const gpu = moduleOf('tool', '1.0.0', 'gpu build', { requires: { labels: { gpu: 'true' } } });
const plain = moduleOf('tool', '1.0.0', 'plain build');
const tool = manifestOf('tool', '1.0.0', [gpu, plain]);

function node(labels: Record<string, string>, manifests: ManifestSource) {
  const counters = new CounterRegistry();
  const reports: ProgressReport[] = [];
  const holder: { core?: AgentCore } = {};
  const current = (): NodeState => holder.core!.state;
  const core = new AgentCore(
    {
      identity: { nodeId: 'n1', classId: 'c', processorType: 'x86_64' },
      store: new SimStore(current),
      fetcher: simFetcher,
      runtime: new SimRuntime('n1', { vetoRate: 0, slowRate: 0, failRate: 0 }, current),
      sink: { publish: (_n, report, body) => void (report === 'progress' && reports.push(body as ProgressReport)) },
      manifests,
      verifySignature: () => undefined,
      minFreeBytes: 0,
      counters,
      log: createLog('silent'),
    },
    { agentVersion: '1.0.0', clusterVersions: { min: 1, max: 1 }, characteristics: { arch: 'x86_64', os: 'linux', memoryMb: 1024, labels } },
  );
  holder.core = core;
  const regress = async () => {
    await core.start();
    await core.handle({ kind: 'regress', body: { rolloutId: 'r1', attempt: 0, to: { kind: 'version', package: 'tool', version: '1.0.0' }, reason: 'test' } }, {});
    return reports.at(-1)!;
  };
  return { core, counters, regress };
}

describe('regress to a version from the registry', () => {
  it('installs the variant the selection picks for the node (its labels)', async () => {
    const withGpu = node({ gpu: 'true' }, { get: async () => ({ manifest: tool }) });
    expect(await withGpu.regress()).toMatchObject({ phase: 'regressed' });
    expect(withGpu.core.state.active[0]!.modules.map((m) => m.digest)).toEqual([gpu.digest]);
    const without = node({}, { get: async () => ({ manifest: tool }) });
    await without.regress();
    expect(without.core.state.active[0]!.modules.map((m) => m.digest)).toEqual([plain.digest]);
  });

  it('fails PROCESSOR_UNSUPPORTED, naming the unmet characteristic, when no variant fits', async () => {
    const n = node({}, { get: async () => ({ manifest: manifestOf('tool', '1.0.0', [gpu]) }) });
    expect(await n.regress()).toMatchObject({ phase: 'failed', error: { code: 'PROCESSOR_UNSUPPORTED', message: expect.stringContaining('needs label gpu=true') } });
  });

  it('reports a registry that does not answer with its own code, counted, and an unknown version as NOT_FOUND', async () => {
    const down = node({}, { get: async () => Promise.reject(new ChangeoverError('TIMEOUT', 'no reply within 2000 ms')) });
    expect(await down.regress()).toMatchObject({ phase: 'failed', error: { code: 'TIMEOUT', message: expect.stringContaining('the registry did not answer') } });
    expect(down.counters.get('agent_manifest_fetch_failures_total', { code: 'TIMEOUT' })).toBe(1);
    const unknown = node({}, { get: async () => null });
    expect(await unknown.regress()).toMatchObject({ phase: 'failed', error: { code: 'NOT_FOUND' } });
    expect(unknown.counters.get('agent_manifest_fetch_failures_total')).toBe(0);
  });
});
