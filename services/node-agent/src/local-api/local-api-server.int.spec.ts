import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { request } from 'node:http';
import { join } from 'node:path';
import { AGENT_ENV, call, LOCAL_API_PATHS } from '@changeover/agent-sdk';
import { waitFor } from '@changeover/test-kit';
import type { Log } from '../core/ports.js';
import { CounterRegistry } from '../metrics.js';
import { AGENT_SDK_MAIN } from '../testing/agent-harness.js';
import { LocalApiServer } from './local-api-server.js';

// The local API only lets a process speak as the process id the agent started it under.

describe('local API credentials', () => {
  let dir: string;
  let api: LocalApiServer;
  let counters: CounterRegistry;
  const warnings: { msg: string; fields?: Record<string, unknown> }[] = [];
  const log: Log = { info: () => undefined, error: () => undefined, warn: (msg, fields) => warnings.push({ msg, fields }) };

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'local-api-'));
    counters = new CounterRegistry();
    warnings.length = 0;
    api = new LocalApiServer(join(dir, 'agent.sock'), counters, log);
    await api.start();
  });

  afterEach(async () => {
    await api.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const register = (processId: string, token: string, bodyId = processId) => call(api.socketPath, { processId, token }, 'POST', LOCAL_API_PATHS.register, { processId: bodyId, handles: ['evaluate'] });

  it('refuses a client without a credential, with a typed error, a metric and a log line', async () => {
    api.issueCredential('svc@1.0.0');
    const raw = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request({ socketPath: api.socketPath, method: 'POST', path: LOCAL_API_PATHS.register, headers: { 'content-type': 'application/json' } }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString('utf8')));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.end(JSON.stringify({ processId: 'svc@1.0.0', handles: [] }));
    });
    expect(raw.status).toBe(401);
    expect(JSON.parse(raw.body)).toMatchObject({ code: 'UNAUTHENTICATED', details: { reason: 'no-credential' } });
    expect(counters.get('agent_local_api_refused_total', { reason: 'no-credential' })).toBe(1);
    expect(warnings).toEqual([expect.objectContaining({ msg: 'local API request refused', fields: expect.objectContaining({ reason: 'no-credential' }) })]);
    expect(api.handles('svc@1.0.0', 'evaluate')).toBe(false);
  });

  it('refuses a wrong credential and an id that was never issued one', async () => {
    api.issueCredential('svc@1.0.0');
    const wrong = await register('svc@1.0.0', 'not-the-token');
    expect(wrong.status).toBe(401);
    expect(wrong.json).toMatchObject({ code: 'UNAUTHENTICATED', details: { reason: 'wrong-credential' } });
    const unknown = await register('other@1.0.0', 'anything');
    expect(unknown.status).toBe(401);
    expect(counters.get('agent_local_api_refused_total', { reason: 'wrong-credential' })).toBe(2);
    expect(api.handles('svc@1.0.0', 'evaluate')).toBe(false);
  });

  it("refuses one process's credential used for another process id", async () => {
    const a = api.issueCredential('a@1.0.0');
    api.issueCredential('b@1.0.0');
    // A's token presented under B's id: the token is not B's.
    const asB = await register('b@1.0.0', a);
    expect(asB.status).toBe(401);
    // A authenticated as itself but registering (or polling) as B: forbidden.
    const forB = await register('a@1.0.0', a, 'b@1.0.0');
    expect(forB.status).toBe(403);
    expect(forB.json).toMatchObject({ code: 'FORBIDDEN', details: { reason: 'other-process' } });
    const poll = await call(api.socketPath, { processId: 'a@1.0.0', token: a }, 'GET', `${LOCAL_API_PATHS.events}?processId=b%401.0.0&waitMs=0`);
    expect(poll.status).toBe(403);
    expect(counters.get('agent_local_api_refused_total', { reason: 'other-process' })).toBe(2);
    expect(api.handles('b@1.0.0', 'evaluate')).toBe(false);
    // A's own registration goes through.
    expect((await register('a@1.0.0', a)).status).toBe(200);
    expect(api.handles('a@1.0.0', 'evaluate')).toBe(true);
  });

  it('a revoked credential stops working; a newer one for the same id is kept', async () => {
    const old = api.issueCredential('svc@1.0.0');
    const next = api.issueCredential('svc@1.0.0');
    api.revokeCredential('svc@1.0.0', old);
    expect((await register('svc@1.0.0', old)).status).toBe(401);
    expect((await register('svc@1.0.0', next)).status).toBe(200);
    api.revokeCredential('svc@1.0.0', next);
    expect((await register('svc@1.0.0', next)).status).toBe(401);
  });

  /** A real process using the SDK with the environment the agent gives it. */
  function sdkProcess(env: Record<string, string>): { exited: Promise<{ code: number | null; out: string }> } {
    const script = `
      const { register } = await import(${JSON.stringify(AGENT_SDK_MAIN)});
      try {
        await register({ onEvaluate: () => ({ decision: 'veto', reason: 'PROCESS_BUSY', message: 'busy from ' + process.env.${AGENT_ENV.processId} }) }, { pollWaitMs: 200 });
        console.log('registered');
      } catch (e) { console.log('refused: ' + e.message); process.exit(3); }
      process.on('SIGTERM', () => process.exit(0));
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { env: { PATH: process.env['PATH'] ?? '', ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
    children.push(child);
    return { exited: new Promise((resolve) => child.once('exit', (code) => resolve({ code, out }))) };
  }
  const children: ReturnType<typeof spawn>[] = [];
  afterEach(() => {
    for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
  });

  it('a spawned process registers and answers with the credential in its environment; a foreign one is refused', async () => {
    const token = api.issueCredential('svc@1.0.0');
    sdkProcess({ [AGENT_ENV.socket]: api.socketPath, [AGENT_ENV.processId]: 'svc@1.0.0', [AGENT_ENV.token]: token });
    await waitFor('the spawned process to register', () => api.handles('svc@1.0.0', 'evaluate'), { timeoutMs: 15_000 });
    const verdict = await api.ask('svc@1.0.0', { kind: 'evaluate', rolloutId: 'r1', attempt: 0, changes: [], replacedModules: [], why: [], deadlineMs: 5000 });
    expect(verdict).toEqual({ decision: 'veto', reason: 'PROCESS_BUSY', message: 'busy from svc@1.0.0' });

    // Another process on the machine that copied the id but not the credential.
    const foreign = sdkProcess({ [AGENT_ENV.socket]: api.socketPath, [AGENT_ENV.processId]: 'svc@1.0.0', [AGENT_ENV.token]: 'guessed' });
    const r = await foreign.exited;
    expect(r.code).toBe(3);
    expect(r.out).toContain('refused: agent refused registration: 401');
    expect(counters.get('agent_local_api_refused_total', { reason: 'wrong-credential' })).toBe(1);
  });
});
