import type { RolloutStreamEnd, RolloutStreamEntry, RolloutSummary } from '@changeover/contracts';
import { headers } from './api.js';
import { SseParser } from './sse.js';

export interface StreamHandlers {
  summary(s: RolloutSummary): void;
  event(e: RolloutStreamEntry): void;
  state(s: 'live' | 'reconnecting' | 'ended', detail?: string): void;
}

/**
 * Follows `GET /rollouts/{id}/stream` with fetch (EventSource cannot send the Authorization header,
 * and a token in a URL would end up in logs and history). Reconnects with Last-Event-ID after an
 * expired stream or a dropped connection; stops at `end: finished`, a refusal, or `signal`.
 */
export async function followRollout(id: string, on: StreamHandlers, signal: AbortSignal): Promise<void> {
  let lastEventId: string | undefined;
  let failures = 0;
  while (!signal.aborted) {
    let finished = false;
    try {
      const res = await fetch(`/rollouts/${encodeURIComponent(id)}/stream`, { headers: headers({ accept: 'text/event-stream', ...(lastEventId ? { 'last-event-id': lastEventId } : {}) }), signal });
      if (!res.ok || !res.body) {
        const body = (await res.json().catch(() => ({}))) as { code?: string; message?: string };
        // A refusal that waiting will not change (no token, wrong role, no such rollout) ends it.
        if (res.status !== 429 && res.status < 500) return on.state('ended', body.message ?? `stream refused (${res.status})`);
        throw new Error(body.message ?? `stream answered ${res.status}`);
      }
      on.state('live');
      failures = 0;
      const parser = new SseParser();
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        for (const f of parser.push(value)) {
          if (f.id !== undefined) lastEventId = f.id;
          if (f.event === 'summary') on.summary(JSON.parse(f.data) as RolloutSummary);
          else if (f.event === 'event') on.event(JSON.parse(f.data) as RolloutStreamEntry);
          else if (f.event === 'end' && (JSON.parse(f.data) as RolloutStreamEnd).reason === 'finished') finished = true;
        }
      }
    } catch (e) {
      if (signal.aborted) return;
      failures++;
      on.state('reconnecting', e instanceof Error ? e.message : String(e));
    }
    if (finished) return on.state('ended', 'the rollout finished');
    if (signal.aborted) return;
    on.state('reconnecting');
    await new Promise((r) => setTimeout(r, Math.min(10_000, 500 * 2 ** Math.min(failures, 5))));
  }
}
