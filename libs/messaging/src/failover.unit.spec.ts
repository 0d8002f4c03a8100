import { describe, expect, it } from '@jest/globals';
import { TimeoutError } from '@nats-io/transport-node';
import { isChangeoverError } from '@changeover/contracts';
import { isFailoverError, retryDuringFailover } from './failover.js';

describe('retryDuringFailover', () => {
  it('tries again while JetStream times out, then returns the answer', async () => {
    let calls = 0;
    const answer = await retryDuringFailover('reading blob x', async () => {
      calls++;
      if (calls < 3) throw new TimeoutError();
      return 'stored';
    }, { pauseMs: 1 });
    expect({ answer, calls }).toEqual({ answer: 'stored', calls: 3 });
  });

  it('gives up at the deadline with UNAVAILABLE naming the operation and the attempts', async () => {
    let calls = 0;
    const failure = await retryDuringFailover('storing blob y', async () => {
      calls++;
      throw new TimeoutError();
    }, { deadlineMs: 30, pauseMs: 5 }).catch((e: unknown) => e);
    expect(isChangeoverError(failure, 'UNAVAILABLE')).toBe(true);
    expect((failure as Error).message).toMatch(/^storing blob y: JetStream did not answer within 30 ms \(\d+ attempts\)/);
    expect(calls).toBeGreaterThan(1);
  });

  it('lets any other error through at once', async () => {
    let calls = 0;
    const refusal = new Error('digest mismatch');
    await expect(retryDuringFailover('storing blob z', async () => {
      calls++;
      throw refusal;
    })).rejects.toBe(refusal);
    expect(calls).toBe(1);
    expect(isFailoverError(refusal)).toBe(false);
    expect(isFailoverError(new Error('wrapped', { cause: new TimeoutError() }))).toBe(true);
  });
});
