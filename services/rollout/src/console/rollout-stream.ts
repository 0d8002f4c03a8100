import type { IncomingMessage, ServerResponse } from 'node:http';
import { ChangeoverError, RolloutId, parse, type RolloutStreamEnd, type RolloutStreamEntry, type RolloutSummary } from '@changeover/contracts';
import { metrics, type Logger } from '@changeover/telemetry';
import { rolloutStreamId } from '../rollout/rollout.events.js';
import { TERMINAL_STATUSES } from '../rollout/rollout.state.js';
import type { EventLog } from '../workflow/rollout.runner.js';

const open = metrics.gauge({ name: 'changeover_rollout_streams_open', help: 'Server-sent event streams of rollouts open now' });
const closed = metrics.counter({ name: 'changeover_rollout_streams_total', help: 'Rollout event streams closed, by why: finished (the rollout ended), expired (ROLLOUT_STREAM_MAX_MS), client (the client went away), shutdown, error', labelNames: ['outcome'] as const });

/** Stored events read per query while catching up. */
const READ_BATCH = 200;

export interface RolloutStreamDeps {
  store: Pick<EventLog, 'readStream'>;
  /** The rollout as `GET /rollouts/{id}` answers it (NOT_FOUND for an unknown one). */
  show(rolloutId: string): Promise<RolloutSummary>;
  /** Resolves once an owned rollout's version passes `after` (or at once when not owned here: see `owned`). */
  changed(rolloutId: string, after: number, waitMs: number): Promise<unknown>;
  owned(rolloutId: string): boolean;
  /** Streams open at once on this instance; RATE_LIMITED beyond. */
  maxStreams: number;
  /** A stream's longest life; then `end` with reason `expired` (the client reconnects with Last-Event-ID). */
  maxMs: number;
  /** A comment line this often keeps proxies from closing an idle stream. */
  keepAliveMs: number;
  /** How often a rollout another instance owns is read again. */
  pollMs: number;
  log: Pick<Logger, 'warn'>;
}

/** `Last-Event-ID`: the stream position the client saw last. */
function lastEventId(header: string | string[] | undefined): number {
  if (header === undefined) return 0;
  const v = Array.isArray(header) ? header[0] : header;
  if (v === undefined || !/^\d{1,15}$/.test(v)) throw new ChangeoverError('VALIDATION_FAILED', 'Last-Event-ID: must be the stream position of an event (a non-negative integer)', { field: 'Last-Event-ID' });
  return Number(v);
}

const frame = (event: string, data: unknown, id?: number) => `event: ${event}\n${id === undefined ? '' : `id: ${id}\n`}data: ${JSON.stringify(data)}\n\n`;

/**
 * `GET /rollouts/{id}/stream`: server-sent events of one rollout, read from its event stream in the
 * event store: each stored event as `event: event` (id = its stream position, so a reconnect with
 * Last-Event-ID misses nothing), the summary after each change as `event: summary`, and `event: end`
 * when the rollout finishes, the stream reaches its time limit or the service stops. The token comes
 * in the Authorization header like on every route (the console reads the stream with fetch, not
 * EventSource, so no token is ever put in a URL). Bounded in number and in time, counted.
 */
export class RolloutStreams {
  private readonly live = new Set<AbortController>();

  constructor(private readonly deps: RolloutStreamDeps) {}

  get openCount(): number {
    return this.live.size;
  }

  async serve(id: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const rolloutId = parse(RolloutId, id, 'rollout id');
    let position = lastEventId(req.headers['last-event-id']);
    if (this.live.size >= this.deps.maxStreams) throw new ChangeoverError('RATE_LIMITED', `${this.live.size} rollout streams are open on this instance, the most ROLLOUT_MAX_STREAMS allows: try again later`, { limit: this.deps.maxStreams });
    // An unknown rollout is a plain 404 before any stream starts.
    let summary = await this.deps.show(rolloutId);
    const stop = new AbortController();
    this.live.add(stop);
    open.inc();
    let outcome = 'error';
    const expiry = setTimeout(() => stop.abort('expired'), this.deps.maxMs);
    const gone = () => stop.abort('client');
    const stopped = new Promise<void>((r) => stop.signal.addEventListener('abort', () => r(), { once: true }));
    req.on('close', gone);
    res.on('close', gone);
    try {
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no' });
      res.flushHeaders();
      let sentVersion = -1;
      let lastWrite = Date.now();
      const write = async (text: string) => {
        if (stop.signal.aborted) return;
        lastWrite = Date.now();
        if (!res.write(text)) await waitFor(res, 'drain', stop.signal);
      };
      for (;;) {
        if (stop.signal.aborted) break;
        const events = await this.deps.store.readStream(rolloutStreamId(rolloutId), { after: position, limit: READ_BATCH });
        for (const e of events) {
          const entry: RolloutStreamEntry = { position: e.streamPosition, type: e.type, at: e.createdAt.toISOString(), actor: typeof e.metadata.actor === 'string' ? e.metadata.actor : null };
          await write(frame('event', entry, e.streamPosition));
          position = e.streamPosition;
        }
        if (events.length === READ_BATCH) continue;
        if (events.length) summary = await this.deps.show(rolloutId);
        if (summary.version !== sentVersion) {
          await write(frame('summary', summary));
          sentVersion = summary.version;
        }
        if ((TERMINAL_STATUSES as readonly string[]).includes(summary.status) && position >= summary.version) {
          outcome = 'finished';
          await write(frame('end', { reason: 'finished', status: summary.status } satisfies RolloutStreamEnd));
          break;
        }
        // The owner wakes this at the next append; a rollout owned elsewhere (or not yet visible in the stream) is read again shortly.
        const ownedHere = this.deps.owned(rolloutId) && position >= summary.version;
        await Promise.race([ownedHere ? this.deps.changed(rolloutId, summary.version, this.deps.keepAliveMs) : sleep(this.deps.pollMs, stop.signal), stopped]);
        if (stop.signal.aborted) break;
        if (Date.now() - lastWrite >= this.deps.keepAliveMs) await write(': keep-alive\n\n');
      }
      const why = String(stop.signal.reason ?? outcome);
      if (why === 'expired' || why === 'shutdown') {
        outcome = why;
        if (!res.writableEnded && !res.destroyed) res.write(frame('end', { reason: why, status: summary.status } satisfies RolloutStreamEnd));
      } else if (why === 'client') outcome = 'client';
    } catch (e) {
      if (stop.signal.aborted && stop.signal.reason === 'client') outcome = 'client';
      else this.deps.log.warn({ err: e, rolloutId }, 'rollout stream failed');
    } finally {
      clearTimeout(expiry);
      req.off('close', gone);
      res.off('close', gone);
      this.live.delete(stop);
      open.dec();
      closed.inc({ outcome });
      if (!res.writableEnded) res.end();
    }
  }

  /** Ends every open stream with `end` (reason shutdown), so the HTTP server can close. */
  closeAll(): void {
    for (const s of this.live) s.abort('shutdown');
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

function waitFor(res: ServerResponse, event: 'drain', signal: AbortSignal): Promise<void> {
  // An abort that came first would never fire the listener.
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      res.off(event, done);
      signal.removeEventListener('abort', done);
      resolve();
    };
    res.once(event, done);
    signal.addEventListener('abort', done, { once: true });
  });
}
