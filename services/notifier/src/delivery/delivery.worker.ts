import { headers } from '@nats-io/transport-node';
import type { DataSource } from 'typeorm';
import { SpanKind, extractTraceContext, withSpan } from '@changeover/telemetry';
import { ChannelConfig, type ChannelType, type CloudEvent } from '@changeover/contracts';
import type { Channels, SendResult } from '../channels/channel.js';
import { inTransaction, query } from '../db/sql.js';
import { errorText, type Logger } from '../log.js';
import type { NotifierMetrics } from '../metrics.js';
import { afterAttempt } from './backoff.js';

export interface WorkerPolicy {
  maxAttempts: number;
  baseMs: number;
  maxMs: number;
  /** How long a claimed delivery stays invisible to other workers: past it, a crashed attempt is retried. */
  leaseMs: number;
  concurrency: number;
  pollIntervalMs: number;
}

interface Claimed {
  id: string;
  /** This claim's token: the delivery's state is recorded only while it is still the latest claim. */
  claim_token: string;
  event: CloudEvent;
  channel: ChannelConfig;
  channel_type: ChannelType;
  attempt_count: number;
  cycle_attempts: number;
  deleted: boolean;
}

/** The event's traceparent as headers, so a delivery's span joins the rollout's trace. */
function traceHeaders(traceparent: string | undefined) {
  if (!traceparent) return undefined;
  const h = headers();
  h.set('traceparent', traceparent);
  return h;
}

/**
 * Sends due deliveries. Claiming pushes next_attempt_at past a lease and sets a fresh claim token
 * inside one short transaction (FOR UPDATE SKIP LOCKED), so several workers (in one instance or
 * many) never take the same row and a worker killed mid-send leaves the row to be retried when the
 * lease ends. An attempt that outlived its lease (a stalled process) finds another token on the
 * row: its attempt is logged but it does not overwrite what the newer claim records.
 */
export class DeliveryWorker {
  private readonly inFlight = new Set<Promise<void>>();
  private stopped = true;
  private wake: (() => void) | null = null;
  private nudged = false;
  private loopDone: Promise<void> = Promise.resolve();

  constructor(
    private readonly db: DataSource,
    private readonly channels: Channels,
    private readonly policy: WorkerPolicy,
    private readonly metrics: NotifierMetrics,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.stopped = false;
    this.loopDone = this.loop();
    // changeover_notifier_pending_deliveries: an index-only count each second, apart from the claim loop.
    this.pendingTimer = setInterval(() => void this.countPending(), 1000);
    this.pendingTimer.unref();
  }

  private pendingTimer?: NodeJS.Timeout;

  private async countPending(): Promise<void> {
    try {
      const [row] = await query<{ n: number }>(this.db, `SELECT count(*)::int AS n FROM notifier.deliveries WHERE status = 'pending'`);
      this.metrics.pendingDeliveries.set(row?.n ?? 0);
    } catch (e) {
      if (!this.stopped) this.log.warn('cannot count pending deliveries', { error: errorText(e) });
    }
  }

  /** New deliveries were recorded or a slot freed: look now rather than at the next poll. */
  nudge(): void {
    this.nudged = true;
    this.wake?.();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.pendingTimer);
    this.nudge();
    await this.loopDone;
    await Promise.allSettled([...this.inFlight]);
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      const free = this.policy.concurrency - this.inFlight.size;
      let claimed = 0;
      if (free > 0) {
        try {
          const jobs = await this.claim(free);
          claimed = jobs.length;
          for (const job of jobs) this.launch(job);
        } catch (e) {
          if (!this.stopped) this.log.warn('cannot claim deliveries', { error: errorText(e) });
        }
      }
      // A full batch means more may be due: look again at once.
      if (claimed === 0 || claimed < free) await this.sleep(this.policy.pollIntervalMs);
    }
  }

  private sleep(ms: number): Promise<void> {
    // A nudge that came while claiming is not lost.
    if (this.nudged) {
      this.nudged = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      let t: NodeJS.Timeout | undefined = undefined;
      const done = () => {
        clearTimeout(t);
        this.nudged = false;
        this.wake = null;
        resolve();
      };
      t = setTimeout(done, ms);
      this.wake = done;
    });
  }

  private async claim(limit: number): Promise<Claimed[]> {
    return inTransaction(this.db, (sql) =>
      sql<Claimed>(
        `WITH due AS (
           SELECT id FROM notifier.deliveries
           WHERE status = 'pending' AND next_attempt_at <= now()
           ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
         UPDATE notifier.deliveries d SET next_attempt_at = now() + make_interval(secs => $2::double precision / 1000), claim_token = gen_random_uuid()
         FROM due, notifier.subscriptions s
         WHERE d.id = due.id AND s.id = d.subscription_id
         RETURNING d.id, d.claim_token, d.event, s.channel, d.channel AS channel_type, d.attempt_count, d.cycle_attempts, s.deleted_at IS NOT NULL AS deleted`,
        [limit, this.policy.leaseMs],
      ),
    );
  }

  private launch(job: Claimed): void {
    const p = this.attempt(job)
      .catch((e) => this.log.error('delivery attempt not recorded; retried after its lease', { delivery: job.id, error: errorText(e) }))
      .finally(() => {
        this.inFlight.delete(p);
        this.nudge();
      });
    this.inFlight.add(p);
  }

  private async attempt(job: Claimed): Promise<void> {
    if (job.deleted) {
      await query(this.db, `UPDATE notifier.deliveries SET status = 'dead', next_attempt_at = NULL, last_error = 'subscription deleted', claim_token = NULL WHERE id = $1 AND status = 'pending' AND claim_token = $2`, [job.id, job.claim_token]);
      return;
    }
    const started = performance.now();
    let result: SendResult;
    const channel = ChannelConfig.safeParse(job.channel);
    if (!channel.success) result = { ok: false, permanent: true, statusCode: null, error: 'stored channel is invalid' };
    else {
      try {
        const send = this.channels[channel.data.type];
        const sendJob = { deliveryId: job.id, event: job.event, channel: channel.data };
        result = await withSpan(`notifier.deliver ${channel.data.type}`, () => send.send(sendJob), {
          parent: extractTraceContext(traceHeaders(job.event.traceparent)),
          kind: SpanKind.CLIENT,
          attributes: { 'changeover.delivery.id': job.id, 'changeover.event.id': job.event.id, 'changeover.delivery.attempt': job.attempt_count + 1 },
        });
      } catch (e) {
        result = { ok: false, permanent: false, statusCode: null, error: errorText(e) };
      }
    }
    const latencyMs = Math.round(performance.now() - started);
    await this.record(job, result, latencyMs);
  }

  private async record(job: Claimed, result: SendResult, latencyMs: number): Promise<void> {
    const cycle = job.cycle_attempts + 1;
    const verdict = afterAttempt(result, cycle, { maxAttempts: this.policy.maxAttempts, baseMs: this.policy.baseMs, maxMs: this.policy.maxMs });
    const error = result.error?.slice(0, 2000) ?? null;
    const current = await inTransaction(this.db, async (sql) => {
      // Every send is in the attempt log, also one whose claim was superseded meanwhile.
      await sql(
        `INSERT INTO notifier.delivery_attempts (delivery_id, attempt, outcome, status_code, latency_ms, error) VALUES ($1, $2, $3, $4, $5, $6)`,
        [job.id, job.attempt_count + 1, result.ok ? 'success' : 'failure', result.statusCode, latencyMs, error],
      );
      const updated = await sql(
        `UPDATE notifier.deliveries SET
           attempt_count = attempt_count + 1, cycle_attempts = cycle_attempts + 1,
           status = $2, last_status_code = $3, last_error = $4,
           next_attempt_at = CASE WHEN $2 = 'pending' THEN now() + make_interval(secs => $5::double precision / 1000) END,
           delivered_at = CASE WHEN $2 = 'delivered' THEN now() ELSE delivered_at END,
           claim_token = NULL
         WHERE id = $1 AND claim_token = $6
         RETURNING id`,
        [job.id, verdict.kind === 'retry' ? 'pending' : verdict.kind, result.statusCode, error, verdict.kind === 'retry' ? verdict.delayMs : 0, job.claim_token],
      );
      return updated.length > 0;
    });
    this.metrics.deliveryLatency.observe({ channel: job.channel_type }, latencyMs / 1000);
    const fields = { delivery: job.id, event: job.event.id, channel: job.channel_type, attempt: job.attempt_count + 1, status: result.statusCode, latencyMs };
    if (!current) {
      // Claimed again after this attempt's lease ended, or redelivered by an operator: the newer claim decides.
      this.metrics.deliveries.inc({ channel: job.channel_type, outcome: 'superseded' });
      this.log.warn('delivery attempt outlived its claim; its outcome is logged, not recorded over the newer claim', { ...fields, ok: result.ok });
      return;
    }
    this.metrics.deliveries.inc({ channel: job.channel_type, outcome: verdict.kind });
    if (verdict.kind === 'dead') this.log.warn('delivery dead-lettered', { ...fields, error });
    else if (verdict.kind === 'retry') this.log.info('delivery failed, will retry', { ...fields, error, inMs: verdict.delayMs });
    else this.log.debug('delivered', fields);
  }
}
