import { describe, expect, it } from '@jest/globals';
import type { ProgressReport } from '@changeover/contracts';
import { createLog } from '../log.js';
import { CounterRegistry } from '../metrics.js';
import type { NodeState } from '../model/state.js';
import { SimRuntime, simFetcher } from '../simulate/sim-runtime.js';
import { retainedState } from '../store/retention.js';
import { manifestOf, moduleOf } from '../testing/packages.js';
import { AgentCore } from './agent-core.js';
import type { DiskHygiene, ModuleStore } from './ports.js';

// When the core collects garbage: at start-up and after a completed changeover, once its report is
// out, with the retained state saved before anything is swept; never after a failed one, and a
// failing collection never fails the command.

const web = (v: string) => {
  const m = manifestOf('web', v, [moduleOf('web-svc', v, `web ${v}`)]);
  return { manifest: m };
};

function node(opts: { failRate?: number; failing?: 'retain' | 'sweep' } = {}) {
  const counters = new CounterRegistry();
  const events: string[] = [];
  const holder: { core?: AgentCore } = {};
  let saved: NodeState | undefined;
  const store: ModuleStore = {
    load: async () => saved ?? holder.core!.state,
    save: (s) => {
      saved = s;
      events.push(`save kept=${s.kept.map((p) => p.manifest.version).join('|')}`);
    },
    hasBlob: () => false,
    freeBytes: async () => 1e12,
  };
  const hygiene: DiskHygiene = {
    retain: (s) => {
      if (opts.failing === 'retain') throw new Error('retain failed');
      return retainedState(s, 1).state;
    },
    sweep: async (s) => {
      if (opts.failing === 'sweep') throw new Error('disk gone');
      events.push(`sweep saved=${saved === s} active=${s.active.map((p) => p.manifest.version).join('|')}`);
    },
  };
  const core = new AgentCore(
    {
      identity: { nodeId: 'n1', classId: 'c', processorType: 'x86_64' },
      store,
      fetcher: simFetcher,
      runtime: new SimRuntime('n1', { vetoRate: 0, slowRate: 0, failRate: opts.failRate ?? 0 }, () => holder.core!.state),
      sink: { publish: (_n, report, body) => void (report === 'progress' && events.push(`report ${(body as ProgressReport).phase}`)) },
      verifySignature: () => undefined,
      minFreeBytes: 0,
      hygiene,
      counters,
      log: createLog('silent'),
    },
    { agentVersion: '1.0.0', clusterVersions: { min: 1, max: 1 }, characteristics: { arch: 'x86_64', os: 'linux', memoryMb: 1024, labels: {} } },
  );
  holder.core = core;
  const commit = (v: string) => core.handle({ kind: 'commit', body: { rolloutId: `r-${v.replaceAll('.', '_')}`, attempt: 0, packages: [web(v)], changeoverTimeoutMs: 10_000, forced: true } }, {});
  return { core, counters, events, commit };
}

describe('garbage collection by the agent core', () => {
  it('collects at start-up and after each completed changeover, saving the retained state before sweeping', async () => {
    const n = node();
    await n.core.start();
    expect(n.events).toEqual(['sweep saved=false active=']);
    n.events.length = 0;
    for (const v of ['1.0.0', '1.1.0', '1.2.0']) await n.commit(v);
    // 1.0.0 is kept by the changeover to 1.2.0 and dropped at once: saved without it, then swept.
    expect(n.events.slice(-4)).toEqual(['save kept=1.0.0', 'report completed', 'save kept=', 'sweep saved=true active=1.2.0']);
    // Each sweep sees the state as saved, after the changeover's report.
    expect(n.events.filter((e) => e.startsWith('sweep'))).toEqual(['sweep saved=true active=1.0.0', 'sweep saved=true active=1.1.0', 'sweep saved=true active=1.2.0']);
    for (const i of n.events.flatMap((e, k) => (e.startsWith('sweep') ? [k] : []))) expect(n.events[i - 1]).toMatch(/^report completed$|^save kept=$/);
    expect(n.core.state.kept).toEqual([]);
  });

  it('does not collect after a failed changeover', async () => {
    const n = node({ failRate: 1 });
    await n.core.start();
    n.events.length = 0;
    await n.commit('1.0.0');
    expect(n.events.at(-1)).toBe('report failed');
    expect(n.events.some((e) => e.startsWith('sweep'))).toBe(false);
  });

  it('a failing collection is counted and logged; the command completes', async () => {
    for (const failing of ['retain', 'sweep'] as const) {
      const n = node({ failing });
      await n.core.start();
      await expect(n.commit('1.0.0')).resolves.toBeUndefined();
      expect(n.events).toContain('report completed');
      expect(n.counters.get('agent_gc_failures_total', { reason: failing === 'retain' ? 'save' : 'sweep' })).toBe(2);
    }
  });
});
