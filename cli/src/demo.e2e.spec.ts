import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startNats, type TestNats } from '@changeover/test-kit';

// `npm run demo` end to end (after `npm run build`): services, real and simulated agents, a veto, a force.
const demo = join(dirname(fileURLToPath(import.meta.url)), '../dist/demo.js');

describe('npm run demo', () => {
  let nats: TestNats;
  beforeAll(async () => {
    nats = await startNats();
  });
  afterAll(async () => {
    await nats.stop();
  });

  it('blocks on the veto, is forced, completes on every node and says so last', async () => {
    const { code, out } = await new Promise<{ code: number | null; out: string }>((resolve) => {
      const child = spawn(process.execPath, [demo], { env: { ...process.env, NATS_URL: nats.url }, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (out += d.toString()));
      child.on('exit', (c) => resolve({ code: c, out }));
    });
    expect(out).toMatch(/VETO node edge-2 process demo-api@1\.0\.0: PROCESS_BUSY/);
    expect(out).toMatch(/delivered io\.changeover\.rollout\.blocked to the webhook/);
    expect(out).toMatch(/dependency check: 0 discrepancies; edge-2 runs demo-api@2\.0\.0 \(kept for regression: demo-api@1\.0\.0\)/);
    const lines = out.trim().split('\n');
    expect(lines.at(-1)).toMatch(/^demo: rollout r-[A-Za-z0-9_-]+ completed on 203 nodes$/);
    expect(code).toBe(0);
  });
});
