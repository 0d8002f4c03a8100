import { readFileSync } from 'node:fs';
import { connect, credsAuthenticator, type NatsConnection } from '@nats-io/transport-node';
import { SpanKind, changeoverMetrics, extractTraceContext, withSpan } from '@changeover/telemetry';
import type { DataSource } from 'typeorm';
import { EmailChannel } from './channels/email.channel.js';
import { SlackChannel } from './channels/slack.channel.js';
import { WebhookChannel } from './channels/webhook.channel.js';
import { openHttpAuth, withStatementTimeout } from '@changeover/http-auth';
import { authConfigOf, loadConfig, type NotifierConfig, type NotifierConfigInput } from './config.js';
import { openDatabase } from './db/data-source.js';
import { query } from './db/sql.js';
import { DeliveryStore } from './delivery/delivery.store.js';
import { DeliveryWorker } from './delivery/delivery.worker.js';
import { startHttp } from './http/http.app.js';
import { startEventConsumer, type EventConsumer } from './intake/event.consumer.js';
import { EventIntake } from './intake/event.intake.js';
import { createLogger } from './log.js';
import { createNotifierMetrics, type NotifierMetrics } from './metrics.js';
import { SubscriptionStore } from './subscriptions/subscription.store.js';

export interface RunningNotifier {
  httpPort: number;
  metrics: NotifierMetrics;
  close(): Promise<void>;
}

/**
 * Starts the notifier: migrations, the event consumer (event → delivery rows → ack), the
 * delivery worker (rows → channels, with retries) and the REST API. Accepts the parsed config
 * or raw environment-style values, which it validates.
 */
/** A parsed value back in its environment form: a parsed NATS_URL is the server list, other arrays are JSON. */
function asEnvValue(key: string, v: unknown): string | undefined {
  if (v === undefined || typeof v === 'string') return v;
  if (key === 'NATS_URL' && Array.isArray(v)) return v.join(',');
  return Array.isArray(v) ? JSON.stringify(v) : String(v);
}

export async function startNotifier(input: NotifierConfig | NotifierConfigInput): Promise<RunningNotifier> {
  const config = loadConfig(Object.fromEntries(Object.entries(input).map(([k, v]) => [k, asEnvValue(k, v)])));
  const log = createLogger(config.LOG_LEVEL);
  const metrics = createNotifierMetrics();
  const cleanup: (() => Promise<unknown> | unknown)[] = [];
  const closeAll = async () => {
    for (const fn of cleanup.reverse()) await Promise.resolve().then(fn).catch(() => undefined);
  };
  try {
    const auth = authConfigOf(config);
    // Every connection gets a statement_timeout: no query waits for ever.
    const databaseUrl = withStatementTimeout(config.DATABASE_URL, auth.statementTimeoutMs);
    const db: DataSource = await openDatabase(databaseUrl);
    cleanup.push(() => db.destroy());
    const nc: NatsConnection = await connect({ servers: config.NATS_URL, name: `notifier-${config.NOTIFIER_CONSUMER_NAME}`, maxReconnectAttempts: -1, noAsyncTraces: true, ...(config.NATS_CREDS ? { authenticator: credsAuthenticator(readFileSync(config.NATS_CREDS)) } : {}) });
    cleanup.push(() => nc.close());

    const email = new EmailChannel(config.SMTP_URL, config.SMTP_FROM, config.NOTIFIER_HTTP_TIMEOUT_MS);
    cleanup.push(() => email.close());
    const channels = { webhook: new WebhookChannel(config.NOTIFIER_HTTP_TIMEOUT_MS), slack: new SlackChannel(config.NOTIFIER_HTTP_TIMEOUT_MS), email };
    const subscriptions = new SubscriptionStore(db, email.configured);
    await subscriptions.ensureDefaults(config.NOTIFIER_DEFAULT_SUBSCRIPTIONS);

    const worker = new DeliveryWorker(
      db,
      channels,
      {
        maxAttempts: config.NOTIFIER_MAX_ATTEMPTS,
        baseMs: config.NOTIFIER_BACKOFF_BASE_MS,
        maxMs: config.NOTIFIER_BACKOFF_MAX_MS,
        // Long enough for one send to finish; after it, a crashed attempt is taken again.
        leaseMs: 2 * config.NOTIFIER_HTTP_TIMEOUT_MS + 1000,
        concurrency: config.NOTIFIER_CONCURRENCY,
        pollIntervalMs: config.NOTIFIER_POLL_INTERVAL_MS,
      },
      metrics,
      log,
    );
    worker.start();
    cleanup.push(() => worker.stop());

    const intake = new EventIntake(db);
    const consumer: EventConsumer = startEventConsumer({
      nc,
      name: config.NOTIFIER_CONSUMER_NAME,
      log,
      handle: async (payload, headers) => {
        if (payload.length > config.NOTIFIER_MAX_EVENT_BYTES) {
          metrics.events.inc({ outcome: 'invalid' });
          changeoverMetrics.rejectedMessages.inc({ subject_kind: 'event', code: 'TOO_LARGE' });
          log.warn('event skipped', { reason: 'invalid', detail: `${payload.length} bytes, over NOTIFIER_MAX_EVENT_BYTES` });
          return;
        }
        // The span joins the rollout's trace through the relay's traceparent header.
        const outcome = await withSpan('notifier.intake', () => intake.handle(payload), { parent: extractTraceContext(headers), kind: SpanKind.CONSUMER });
        if (outcome.kind === 'skipped') {
          metrics.events.inc({ outcome: outcome.reason });
          changeoverMetrics.rejectedMessages.inc({ subject_kind: 'event', code: 'VALIDATION_FAILED' });
          log.warn('event skipped', { reason: outcome.reason, detail: outcome.detail });
          return;
        }
        metrics.events.inc({ outcome: outcome.matched ? 'matched' : 'unmatched' });
        if (outcome.inserted) worker.nudge();
      },
    });
    cleanup.push(() => consumer.close());

    const httpAuth = await openHttpAuth({ service: 'notifier', databaseUrl, config: auth, onAuditError: (e) => log.warn('audit log write failed', { error: String(e) }), warn: (m) => log.warn(m) });
    cleanup.push(() => httpAuth.close());
    const http = await startHttp(
      {
        auth: httpAuth,
        maxBodyBytes: config.NOTIFIER_MAX_BODY_BYTES,
        subscriptions,
        deliveries: new DeliveryStore(db, () => worker.nudge()),
        metrics,
        log,
        readiness: async () => ({
          database: await query(db, 'SELECT 1').then(() => true, () => false),
          nats: !nc.isClosed(),
          consumer: consumer.running,
        }),
      },
      config.NOTIFIER_HTTP_PORT,
    );
    cleanup.push(() => http.close());
    log.info('notifier started', { httpPort: http.port, consumer: config.NOTIFIER_CONSUMER_NAME });
    return { httpPort: http.port, metrics, close: closeAll };
  } catch (e) {
    await closeAll();
    throw e;
  }
}
