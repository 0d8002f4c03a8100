/** One server-sent event: its `event:` name (default `message`), `id:` and the `data:` lines joined. */
export interface SseFrame {
  event: string;
  id?: string;
  data: string;
}

/**
 * Splits a text/event-stream into frames as chunks arrive (any chunk boundary, LF or CRLF line
 * ends); comment lines (`: keep-alive`) are dropped. The spec's field rules, without `retry`.
 */
export class SseParser {
  private buffer = '';
  private event = '';
  private id: string | undefined;
  private data: string[] = [];

  push(chunk: string): SseFrame[] {
    this.buffer += chunk;
    const out: SseFrame[] = [];
    for (;;) {
      const nl = this.buffer.search(/\r\n|\n|\r/);
      if (nl < 0) break;
      const line = this.buffer.slice(0, nl);
      this.buffer = this.buffer.slice(nl + (this.buffer.startsWith('\r\n', nl) ? 2 : 1));
      if (line === '') {
        if (this.data.length) out.push({ event: this.event || 'message', ...(this.id !== undefined ? { id: this.id } : {}), data: this.data.join('\n') });
        this.event = '';
        this.id = undefined;
        this.data = [];
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'event') this.event = value;
      else if (field === 'data') this.data.push(value);
      else if (field === 'id') this.id = value;
    }
    return out;
  }
}
