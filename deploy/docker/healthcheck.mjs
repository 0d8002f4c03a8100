// Container health probe: GET a URL and exit 0 on a 2xx answer. With no argument it probes the
// liveness path of this image's process on its own port (see processes.json).
import { readFileSync } from 'node:fs';

function defaultUrl() {
  const processes = JSON.parse(readFileSync(new URL('./processes.json', import.meta.url), 'utf8'));
  const p = processes[process.env.CHANGEOVER_SERVICE ?? ''];
  if (!p) throw new Error(`unknown CHANGEOVER_SERVICE ${process.env.CHANGEOVER_SERVICE}`);
  return `http://127.0.0.1:${Number(process.env[p.portVariable] || p.port)}${p.live}`;
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
