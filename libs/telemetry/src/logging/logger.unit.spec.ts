import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Writable } from 'node:stream';
import { ChangeoverError } from '@changeover/contracts';
import { createLogger, currentTraceIds, installTestTracing, withSpan, type TestTracing } from '../index.js';

let tracing: TestTracing;
beforeAll(() => {
  tracing = installTestTracing();
});
afterAll(() => tracing.shutdown());

function capture() {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  return { lines, destination };
}

describe('createLogger', () => {
  it('writes JSON lines with trace_id and span_id inside a span, none outside', async () => {
    const { lines, destination } = capture();
    const log = createLogger('rollout', { destination, level: 'info' });
    log.info('outside');
    const ids = await withSpan('step', () => {
      log.info({ rolloutId: 'r1' }, 'inside');
      return currentTraceIds()!;
    });
    expect(lines[0]).toMatchObject({ level: 'info', name: 'rollout', msg: 'outside' });
    expect(lines[0]).not.toHaveProperty('trace_id');
    expect(lines[1]).toMatchObject({ msg: 'inside', rolloutId: 'r1', trace_id: ids.traceId, span_id: ids.spanId });
    expect(typeof lines[1]!['time']).toBe('string');
  });

  it('honours the level', () => {
    const { lines, destination } = capture();
    const log = createLogger('quiet', { destination, level: 'warn' });
    log.info('dropped');
    log.warn('kept');
    expect(lines.map((l) => l['msg'])).toEqual(['kept']);
  });

  it('refuses a bad name or level with a typed error', () => {
    expect(() => createLogger('has space')).toThrow(ChangeoverError);
    expect(() => createLogger('ok', { level: 'loud' })).toThrow(/log level must be one of/);
  });
});
