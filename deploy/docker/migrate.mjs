// One-shot migrations step (Compose `migrate`, Kubernetes init container): brings the shared
// event-store schema up to date in DATABASE_URL, then exits. Idempotent and advisory-locked, so
// it is safe to run on every start. Each service migrates its own tables when it starts.
import { migrate } from '@changeover/event-store';

const url = process.env.DATABASE_URL;
if (!url) {
  console.error('migrate: DATABASE_URL is not set');
  process.exit(2);
}
try {
  const applied = await migrate(url);
  console.log(JSON.stringify({ level: 'info', msg: 'event-store schema up to date', applied }));
  process.exit(0);
} catch (e) {
  console.error(JSON.stringify({ level: 'error', msg: 'migration failed', error: e instanceof Error ? e.message : String(e) }));
  process.exit(1);
}
