import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isChangeoverError } from '@changeover/contracts';
import { freePort, startNats, type TestNats } from '@changeover/test-kit';
import { ensureNats } from './demo-infra.js';

// The demo takes NATS_URL as a cluster's server list: it uses the list when any server answers.

let nats: TestNats;
let workDir: string;

beforeAll(async () => {
  nats = await startNats();
  workDir = await mkdtemp(join(tmpdir(), 'changeover-demo-infra-'));
});

afterAll(async () => {
  await nats?.stop();
  await rm(workDir, { recursive: true, force: true });
});

describe('ensureNats', () => {
  it('passes the whole server list on when one of its servers answers, starting no server of its own', async () => {
    const list = `nats://127.0.0.1:${await freePort()},${nats.url}`;
    const got = await ensureNats(list, workDir);
    expect(got).toEqual({ url: list });
  });

  it('refuses a list with a bad entry, naming it, before trying any server', async () => {
    const failure = await ensureNats(`${nats.url},http://127.0.0.1:80`, workDir).catch((e: unknown) => e);
    expect(isChangeoverError(failure, 'VALIDATION_FAILED')).toBe(true);
    expect((failure as Error).message).toMatch(/invalid NATS_URL: entry 2 "http:\/\/127.0.0.1:80" has scheme http/);
  });
});
