// Container HEALTHCHECK: GET /health/live on the port this process listens on; exit 0 when it answers 2xx.
import { readFileSync } from 'node:fs';

const ports = JSON.parse(readFileSync(new URL('./service-ports.json', import.meta.url), 'utf8'));
const entry = ports[process.env.CHANGEOVER_SERVICE ?? ''];
if (!entry) {
  console.error(`healthcheck: unknown CHANGEOVER_SERVICE ${process.env.CHANGEOVER_SERVICE}`);
  process.exit(1);
}
const port = Number(process.env[entry.variable] || entry.port);
try {
  const res = await fetch(`http://127.0.0.1:${port}/health/live`, { signal: AbortSignal.timeout(2500) });
  process.exit(res.ok ? 0 : 1);
} catch (e) {
  console.error(`healthcheck: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
}
