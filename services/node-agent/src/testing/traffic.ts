import { get } from 'node:http';

/** One GET over loopback: the body of a 200 answer, anything else an error. */
export function fetchText(port: number, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path, agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`status ${res.statusCode}`))));
    }).on('error', reject);
  });
}

/** Two request loops over loopback until stopped, each bounded to `max` requests; every failure is counted. */
export function trafficTo(port: number, max = 20_000) {
  const stats = { ok: 0, failed: 0, errors: [] as string[], bodies: new Set<string>() };
  let running = true;
  const loop = async () => {
    for (let i = 0; running && i < max; i++) {
      try {
        stats.bodies.add(await fetchText(port, '/'));
        stats.ok++;
      } catch (e) {
        stats.failed++;
        stats.errors.push(String(e));
      }
    }
  };
  const loops = [loop(), loop()];
  return { stats, stop: async () => ((running = false), await Promise.all(loops)) };
}
