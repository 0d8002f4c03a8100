import { describe, expect, it } from '@jest/globals';
import { Writable } from 'node:stream';
import { createLogger, installTestTracing, withSpan } from '@changeover/telemetry';
import { fromPino } from './log.js';

describe('agent log', () => {
  it('writes pino JSON lines, message first, with the trace and span id inside a rollout span', async () => {
    const tracing = installTestTracing();
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({ write: (chunk: Buffer, _e, done) => (lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>), done()) });
    const log = fromPino(createLogger('node-agent', { level: 'info', destination: sink }).child({ nodeId: 'edge-1' }));
    log.info('agent up', { classId: 'edge' });
    const ids = await withSpan('agent.commit', (span) => {
      log.warn('commit did not complete', { code: 'NOT_READY' });
      return span.spanContext();
    });
    await tracing.shutdown();
    expect(lines[0]).toMatchObject({ level: 'info', msg: 'agent up', nodeId: 'edge-1', classId: 'edge', name: 'node-agent' });
    expect(lines[0]).not.toHaveProperty('trace_id');
    expect(lines[1]).toMatchObject({ level: 'warn', msg: 'commit did not complete', code: 'NOT_READY', trace_id: ids.traceId, span_id: ids.spanId });
  });
});
