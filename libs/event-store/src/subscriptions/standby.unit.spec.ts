import { describe, expect, it } from '@jest/globals';
import { waitFor } from '@changeover/test-kit';
import type { ExclusiveLock } from './exclusive-lock.js';
import { CheckpointedSubscription, type SubscriptionSource } from './subscription.js';

// A subscription standing by for the exclusive lock keeps its checkpoint current from the store;
// when the store does not answer, the failure goes to onError instead of being dropped.

describe('a stand-by subscription', () => {
  it('reports a failed checkpoint refresh to onError and keeps standing by', async () => {
    let storeUp = true;
    let checkpoint = 5n;
    const source: SubscriptionSource = {
      readAll: async () => [],
      headPosition: async () => 10n,
      loadCheckpoint: async () => (storeUp ? checkpoint : Promise.reject(new Error('connection terminated'))),
      saveCheckpoint: async () => undefined,
      onAppended: () => () => undefined,
    };
    let cancel!: () => void;
    const lock: ExclusiveLock = { acquire: () => new Promise((_resolve, reject) => (cancel = () => reject(new Error('cancelled')))), cancel: () => cancel() };
    const errors: unknown[] = [];
    const sub = new CheckpointedSubscription('standby', source, async () => undefined, { batchSize: 10, pollMs: 10, retryMs: 10, onError: (e) => errors.push(e), exclusive: lock });
    await sub.start();
    try {
      storeUp = false;
      await waitFor('the failed refresh reported', () => errors.length >= 2);
      expect(errors.every((e) => String(e) === 'Error: connection terminated')).toBe(true);
      storeUp = true;
      checkpoint = 8n; // the holder's progress
      await waitFor('the checkpoint current again', () => sub.position() === 8n);
    } finally {
      await sub.stop();
    }
  });
});
