import { describe, expect, it } from '@jest/globals';
import { SseParser } from './sse.js';

describe('SseParser', () => {
  it('should split frames at any chunk boundary and join data lines', () => {
    const text = 'event: summary\nid: 7\ndata: {"a":1}\n\n: keep-alive\n\nevent: event\ndata: line 1\ndata: line 2\n\n';
    for (let cut = 0; cut <= text.length; cut++) {
      const p = new SseParser();
      const frames = [...p.push(text.slice(0, cut)), ...p.push(text.slice(cut))];
      expect(frames).toEqual([
        { event: 'summary', id: '7', data: '{"a":1}' },
        { event: 'event', data: 'line 1\nline 2' },
      ]);
    }
  });

  it('should take CRLF line ends, default the event name and keep an unfinished frame for the next chunk', () => {
    const p = new SseParser();
    expect(p.push('data: x\r\n\r\ndata:y')).toEqual([{ event: 'message', data: 'x' }]);
    expect(p.push('\n\n')).toEqual([{ event: 'message', data: 'y' }]);
    expect(p.push('event: end\n\n')).toEqual([]);
  });
});
