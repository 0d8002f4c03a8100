import { ChangeoverError } from '@changeover/contracts';
import { startTelemetry } from '@changeover/telemetry';
import { loadConfig } from './config.js';
import { startNotifier } from './notifier.js';

/** `node services/notifier/dist/main.js`: configuration from the environment, stops on SIGTERM/SIGINT. */
async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (e) {
    console.error(e instanceof ChangeoverError ? e.message : String(e));
    process.exit(2);
  }
  const stopTelemetry = await startTelemetry({ serviceName: 'changeover-notifier' });
  const notifier = await startNotifier(config);
  const stop = async () => {
    await notifier.close();
    await stopTelemetry();
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop());
  process.once('SIGINT', () => void stop());
}

main().catch((e: unknown) => {
  console.error('notifier failed to start:', e instanceof Error ? e.message : String(e));
  process.exit(1);
});
