import { describe, expect, it } from '@jest/globals';
import { isChangeoverError } from '@changeover/contracts';
import { GroupCommitQueue, type Pending } from './group-commit.js';

describe('GroupCommitQueue', () => {
  it('coalesces concurrent requests into bounded batches, one in flight at a time', async () => {
    const batches: number[][] = [];
    let inFlight = 0;
    let maxInFlight = 0;
    const queue = new GroupCommitQueue<number, number>(async (batch) => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      batches.push(batch.map((p) => p.request));
      await new Promise((r) => setImmediate(r));
      for (const p of batch) p.resolve(p.request * 10);
      inFlight--;
    }, { maxBatch: 4, maxWaitMs: 1000, concurrency: 1 });
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => queue.submit(i)));
    expect(results).toEqual([0, 10, 20, 30, 40, 50, 60, 70, 80, 90]);
    expect(batches).toEqual([[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]);
    expect(maxInFlight).toBe(1);
  });

  it('runs batches side by side but never two holding the same key, keeping each key in order', async () => {
    const batches: string[][] = [];
    const inFlight = new Set<string>();
    let overlap = false;
    let maxBatches = 0;
    let running = 0;
    const queue = new GroupCommitQueue<string, string>(async (batch) => {
      running++;
      maxBatches = Math.max(maxBatches, running);
      const keys = batch.map((p) => p.request.split(':')[0]!);
      if (keys.some((k) => inFlight.has(k))) overlap = true;
      keys.forEach((k) => inFlight.add(k));
      batches.push(batch.map((p) => p.request));
      await new Promise((r) => setTimeout(r, 5));
      keys.forEach((k) => inFlight.delete(k));
      for (const p of batch) p.resolve(p.request);
      running--;
    }, { maxBatch: 2, maxWaitMs: 0, concurrency: 2 }, (r) => r.split(':')[0]!);
    await Promise.all(['a:1', 'a:2', 'b:1', 'b:2', 'c:1', 'a:3'].map((r) => queue.submit(r)));
    expect(overlap).toBe(false);
    expect(maxBatches).toBe(2);
    const order = batches.flat();
    expect(order.filter((r) => r.startsWith('a:'))).toEqual(['a:1', 'a:2', 'a:3']);
    expect(order.filter((r) => r.startsWith('b:'))).toEqual(['b:1', 'b:2']);
  });

  it('gives each caller its own failure and fails what a batch left unsettled', async () => {
    const queue = new GroupCommitQueue<string, string>(async (batch: Pending<string, string>[]) => {
      for (const p of batch) if (p.request === 'good') p.resolve('ok');
      batch.find((p) => p.request === 'bad')?.reject(new Error('bad one'));
    }, { maxBatch: 10, maxWaitMs: 0 });
    const [good, bad, forgotten] = await Promise.allSettled([queue.submit('good'), queue.submit('bad'), queue.submit('other')]);
    expect(good).toEqual({ status: 'fulfilled', value: 'ok' });
    expect(bad.status === 'rejected' && String(bad.reason)).toBe('Error: bad one');
    expect(forgotten.status === 'rejected' && isChangeoverError(forgotten.reason, 'INTERNAL')).toBe(true);
  });

  it('fails every caller of a batch whose flush throws', async () => {
    const queue = new GroupCommitQueue<number, number>(async () => {
      throw new Error('db down');
    }, { maxBatch: 10, maxWaitMs: 0 });
    const settled = await Promise.allSettled([queue.submit(1), queue.submit(2)]);
    expect(settled.map((s) => s.status)).toEqual(['rejected', 'rejected']);
  });

  it('close flushes what is pending, then refuses new requests', async () => {
    const flushed: number[] = [];
    const queue = new GroupCommitQueue<number, number>(async (batch) => {
      for (const p of batch) {
        flushed.push(p.request);
        p.resolve(p.request);
      }
    }, { maxBatch: 100, maxWaitMs: 60_000 });
    const pending = [queue.submit(1), queue.submit(2)];
    await queue.close();
    expect(await Promise.all(pending)).toEqual([1, 2]);
    expect(flushed).toEqual([1, 2]);
    await expect(queue.submit(3)).rejects.toMatchObject({ code: 'UNAVAILABLE' });
  });
});
