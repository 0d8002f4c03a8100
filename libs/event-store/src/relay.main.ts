// Stand-alone outbox relay: node libs/event-store/dist/relay.main.js (DATABASE_URL, NATS_URL; see README).
import { readFileSync } from 'node:fs';
import { connect, credsAuthenticator } from '@nats-io/transport-node';
import { EventStore } from './event-store.js';
import { startOutboxRelay } from './relay/outbox-relay.js';
import { loadRelayConfig } from './relay/relay.config.js';

const log = (msg: string, extra: Record<string, unknown> = {}) => console.log(JSON.stringify({ level: 'info', time: new Date().toISOString(), msg, ...extra }));

async function main(): Promise<void> {
  const config = loadRelayConfig(process.env);
  const store = await EventStore.connect({ url: config.DATABASE_URL, poolSize: config.PG_POOL_SIZE, migrate: true });
  const nats = await connect({ servers: config.NATS_URL, name: config.RELAY_NAME, maxReconnectAttempts: -1, noAsyncTraces: true, ...(config.NATS_CREDS ? { authenticator: credsAuthenticator(readFileSync(config.NATS_CREDS)) } : {}) });
  const relay = await startOutboxRelay({
    store,
    nats,
    streamName: config.EVENTS_STREAM,
    source: config.RELAY_SOURCE,
    subscriptionName: config.RELAY_NAME,
    batchSize: config.RELAY_BATCH_SIZE,
    replicas: config.NATS_STREAM_REPLICAS,
    onError: (e) => console.error(JSON.stringify({ level: 'error', msg: 'relay batch failed; retrying', error: String(e) })),
  });
  log('relay started', { checkpoint: relay.position().toString(), stream: config.EVENTS_STREAM });
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log('relay stopping', { signal });
    await relay.stop();
    await store.close();
    await nats.drain();
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

main().catch((e: unknown) => {
  console.error(JSON.stringify({ level: 'fatal', msg: 'relay failed to start', error: e instanceof Error ? e.message : String(e) }));
  process.exit(1);
});
