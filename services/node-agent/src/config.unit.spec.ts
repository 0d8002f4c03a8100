import { describe, expect, it } from '@jest/globals';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createAuthority, mintNodeCredentials } from '@changeover/nats-auth';
import { LauncherConfig, loadConfig } from './config.js';

describe('agent config', () => {
  it('reads NATS_URL (or --nats-url) as a server list and NATS_STREAM_REPLICAS, naming a bad list entry', () => {
    const c = loadConfig({ NATS_URL: 'nats://other:4222', NATS_STREAM_REPLICAS: '3' }, ['--nats-url', 'nats://n1:4222, nats://n2:4222,nats://n3:4222']);
    expect([c.NATS_URL, c.NATS_STREAM_REPLICAS]).toEqual([['nats://n1:4222', 'nats://n2:4222', 'nats://n3:4222'], 3]);
    expect(() => loadConfig({ NATS_URL: 'nats://n1:4222,ws://n2:80' })).toThrow(/NATS_URL: .*entry 2 "ws:\/\/n2:80" has scheme ws/);
  });

  it('reads env and lets CLI flags override it', () => {
    const c = loadConfig({ NODE_ID: 'n1', NODE_LABELS: 'zone=a,tier=web', AGENT_CLUSTER_VERSIONS: '1-2' }, ['--simulate', '10000', '--class', 'web', '--veto-rate=0.01', '--arm-ratio', '0.5']);
    expect(c).toMatchObject({ NODE_ID: 'n1', NODE_CLASS: 'web', SIMULATE: 10000, SIM_VETO_RATE: 0.01, SIM_ARM_RATIO: 0.5, NODE_LABELS: { zone: 'a', tier: 'web' }, AGENT_CLUSTER_VERSIONS: { min: 1, max: 2 } });
    expect(c.AGENT_SOCKET).toBe('/var/lib/changeover-agent/agent.sock');
  });

  it('reads NATS_CREDS (a readable .creds file) and AGENT_RETIRED_KEYS', () => {
    const creds = join(mkdtempSync(join(tmpdir(), 'agent-creds-')), 'node.creds');
    writeFileSync(creds, '-----BEGIN NATS USER JWT-----\nx\n------END NATS USER JWT------\n-----BEGIN USER NKEY SEED-----\nSU\n------END USER NKEY SEED------\n');
    expect(loadConfig({ NATS_CREDS: creds, AGENT_RETIRED_KEYS: 'refuse' })).toMatchObject({ NATS_CREDS: creds, AGENT_RETIRED_KEYS: 'refuse' });
    expect(loadConfig({}, ['--nats-creds', creds]).NATS_CREDS).toBe(creds);
    expect(loadConfig({})).toMatchObject({ NATS_CREDS: undefined, AGENT_RETIRED_KEYS: 'accept' });
    expect(() => loadConfig({ NATS_CREDS: '/nonexistent/node.creds' })).toThrow(/NATS_CREDS: cannot read/);
    const notCreds = join(mkdtempSync(join(tmpdir(), 'agent-creds-')), 'x.creds');
    writeFileSync(notCreds, 'hello');
    expect(() => loadConfig({ NATS_CREDS: notCreds })).toThrow(/NATS_CREDS: .* is not a NATS .creds file/);
    expect(() => loadConfig({ AGENT_RETIRED_KEYS: 'sometimes' })).toThrow(/AGENT_RETIRED_KEYS/);
  });

  it('reads the trace sample ratio (default 0.01) and refuses one outside 0..1', () => {
    expect(loadConfig({}).AGENT_TRACE_SAMPLE_RATIO).toBe(0.01);
    expect(loadConfig({ AGENT_TRACE_SAMPLE_RATIO: '0.25' }).AGENT_TRACE_SAMPLE_RATIO).toBe(0.25);
    expect(loadConfig({}, ['--trace-sample-ratio', '1']).AGENT_TRACE_SAMPLE_RATIO).toBe(1);
    for (const bad of ['1.5', '-0.1', 'often']) expect(() => loadConfig({ AGENT_TRACE_SAMPLE_RATIO: bad })).toThrow(/AGENT_TRACE_SAMPLE_RATIO/);
  });

  it('reads the disk hygiene settings (kept versions, log rotation) and refuses bad ones', () => {
    expect(loadConfig({})).toMatchObject({ AGENT_KEEP_VERSIONS: 1, AGENT_LOG_MAX_BYTES: 10 * 1024 * 1024, AGENT_LOG_KEEP: 5 });
    expect(loadConfig({ AGENT_KEEP_VERSIONS: '3', AGENT_LOG_MAX_BYTES: '65536', AGENT_LOG_KEEP: '2' })).toMatchObject({ AGENT_KEEP_VERSIONS: 3, AGENT_LOG_MAX_BYTES: 65536, AGENT_LOG_KEEP: 2 });
    for (const bad of ['0', '17', '1.5', 'all']) expect(() => loadConfig({ AGENT_KEEP_VERSIONS: bad })).toThrow(/AGENT_KEEP_VERSIONS/);
    for (const bad of ['100', '-1', '10MB']) expect(() => loadConfig({ AGENT_LOG_MAX_BYTES: bad })).toThrow(/AGENT_LOG_MAX_BYTES/);
    for (const bad of ['0', '101', 'some']) expect(() => loadConfig({ AGENT_LOG_KEEP: bad })).toThrow(/AGENT_LOG_KEEP/);
  });

  it('refuses node credentials issued to another node (a simulated fleet may use any user)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'agent-creds-'));
    const file = join(dir, 'n1.creds');
    writeFileSync(file, (await mintNodeCredentials(createAuthority(), { nodeId: 'n1', classId: 'web' })).creds);
    expect(loadConfig({ NATS_CREDS: file, NODE_ID: 'n1' }).NATS_CREDS).toBe(file);
    expect(() => loadConfig({ NATS_CREDS: file, NODE_ID: 'n2' })).toThrow(/issued to n1, not NODE_ID n2/);
    expect(loadConfig({ NATS_CREDS: file, NODE_ID: 'n2' }, ['--simulate', '10']).SIMULATE).toBe(10);
  });

  it('fails with a message naming each bad value', () => {
    expect(() => loadConfig({ NODE_ID: 'bad id', AGENT_CLUSTER_VERSIONS: '3-1' })).toThrow(/NODE_ID.*AGENT_CLUSTER_VERSIONS|AGENT_CLUSTER_VERSIONS.*NODE_ID/);
    expect(() => loadConfig({}, ['--veto-rate', '2'])).toThrow(/SIM_VETO_RATE/);
    expect(() => loadConfig({}, ['--bogus', '1'])).toThrow(/unknown flag --bogus/);
    expect(() => loadConfig({ AGENT_EXTERNAL_PROCESSES: 'ok-1,../escape' })).toThrow(/AGENT_EXTERNAL_PROCESSES/);
    expect(loadConfig({ AGENT_EXTERNAL_PROCESSES: ' a@1.0.0 , b ' }).AGENT_EXTERNAL_PROCESSES).toEqual(['a@1.0.0', 'b']);
    expect(() => loadConfig({ AGENT_UPGRADE_REJOIN_TIMEOUT_MS: '5' })).toThrow(/AGENT_UPGRADE_REJOIN_TIMEOUT_MS/);
    expect(LauncherConfig.safeParse({ AGENT_UPGRADE_START_TIMEOUT_MS: 'soon' }).success).toBe(false);
    expect(LauncherConfig.parse({}).AGENT_UPGRADE_START_TIMEOUT_MS).toBe(60_000);
    expect(LauncherConfig.parse({}).AGENT_UPGRADE_PROBATION_MS).toBe(10_000);
    expect(LauncherConfig.parse({ AGENT_UPGRADE_PROBATION_MS: '0' }).AGENT_UPGRADE_PROBATION_MS).toBe(0);
    expect(LauncherConfig.safeParse({ AGENT_UPGRADE_PROBATION_MS: '-1' }).success).toBe(false);
    expect(LauncherConfig.safeParse({ AGENT_UPGRADE_PROBATION_MS: 'a while' }).success).toBe(false);
    expect(LauncherConfig.safeParse({ AGENT_HEALTH_PORT: '70000' }).success).toBe(false);
  });
});
