import { describe, expect, it } from '@jest/globals';
import { readinessOf } from './readiness.js';

describe('readiness checks', () => {
  const deps = { ping: () => Promise.resolve(), natsClosed: () => false, migrated: () => true };

  it('passes every check when Postgres answers, NATS is open and the migrations ran', async () => {
    expect(await readinessOf(deps)()).toEqual({ postgres: true, nats: true, migrations: true });
  });

  it('names the failed check: Postgres refusing or not answering in time, NATS closed, migrations pending', async () => {
    expect(await readinessOf({ ...deps, ping: () => Promise.reject(new Error('refused')) })()).toEqual({ postgres: false, nats: true, migrations: true });
    expect(await readinessOf({ ...deps, ping: () => new Promise(() => undefined) }, 10)()).toEqual({ postgres: false, nats: true, migrations: true });
    expect(await readinessOf({ ...deps, natsClosed: () => true, migrated: () => false })()).toEqual({ postgres: true, nats: false, migrations: false });
  });
});
