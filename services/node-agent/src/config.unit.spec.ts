import { describe, expect, it } from '@jest/globals';
import { loadConfig } from './config.js';

describe('agent config', () => {
  it('reads env and lets CLI flags override it', () => {
    const c = loadConfig({ NODE_ID: 'n1', NODE_LABELS: 'zone=a,tier=web', AGENT_CLUSTER_VERSIONS: '1-2' }, ['--simulate', '10000', '--class', 'web', '--veto-rate=0.01', '--arm-ratio', '0.5']);
    expect(c).toMatchObject({ NODE_ID: 'n1', NODE_CLASS: 'web', SIMULATE: 10000, SIM_VETO_RATE: 0.01, SIM_ARM_RATIO: 0.5, NODE_LABELS: { zone: 'a', tier: 'web' }, AGENT_CLUSTER_VERSIONS: { min: 1, max: 2 } });
    expect(c.AGENT_SOCKET).toBe('/var/lib/changeover-agent/agent.sock');
  });

  it('fails with a message naming each bad value', () => {
    expect(() => loadConfig({ NODE_ID: 'bad id', AGENT_CLUSTER_VERSIONS: '3-1' })).toThrow(/NODE_ID.*AGENT_CLUSTER_VERSIONS|AGENT_CLUSTER_VERSIONS.*NODE_ID/);
    expect(() => loadConfig({}, ['--veto-rate', '2'])).toThrow(/SIM_VETO_RATE/);
    expect(() => loadConfig({}, ['--bogus', '1'])).toThrow(/unknown flag --bogus/);
  });
});
