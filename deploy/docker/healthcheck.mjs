// Container health probe: GET a URL and exit 0 on a 2xx answer. With no argument it probes
// /health/live on this process's own port (REGISTRY_/ROLLOUT_/NOTIFIER_HTTP_PORT or AGENT_HEALTH_PORT).
import { readFileSync } from 'node:fs';

function defaultUrl() {
  const ports = JSON.parse(readFileSync(new URL('./service-ports.json', import.meta.url), 'utf8'));
  const entry = ports[process.env.CHANGEOVER_SERVICE ?? ''];
  if (!entry) throw new Error(`unknown CHANGEOVER_SERVICE ${process.env.CHANGEOVER_SERVICE}`);
  return `http://127.0.0.1:${Number(process.env[entry.variable] || entry.port)}/health/live`;
}

try {
  const url = process.argv[2] ?? defaultUrl();
  const res = await fetch(url, { signal: AbortSignal.timeout(2500) });
  if (!res.ok) console.error(`healthcheck: ${url} answered ${res.status}`);
  process.exit(res.ok ? 0 : 1);
} catch (e) {
  console.error(`healthcheck: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
}
