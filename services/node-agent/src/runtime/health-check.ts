import { execFile } from 'node:child_process';
import { request } from 'node:http';
import { connect } from 'node:net';
import type { HealthCheck } from '@changeover/contracts';

export type ProbeResult = { ok: true; output: string } | { ok: false; output: string };

function httpProbe(host: string, port: number, path: string, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const req = request({ host, port, path, method: 'GET', timeout: timeoutMs, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body = (body + c).slice(0, 2000)));
      res.on('end', () => {
        const ok = (res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 300;
        resolve({ ok, output: `GET ${path} → ${res.statusCode} ${body.trim()}` });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (e) => resolve({ ok: false, output: `GET ${path} on port ${port}: ${e.message}` }));
    req.end();
  });
}

function tcpProbe(host: string, port: number, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const s = connect({ host, port, timeout: timeoutMs });
    s.once('connect', () => (s.destroy(), resolve({ ok: true, output: `tcp ${port} open` })));
    s.once('timeout', () => (s.destroy(), resolve({ ok: false, output: `tcp ${port}: no connection within ${timeoutMs} ms` })));
    s.once('error', (e) => resolve({ ok: false, output: `tcp ${port}: ${e.message}` }));
  });
}

export function commandProbe(argv: string[], timeoutMs: number, env: NodeJS.ProcessEnv): Promise<ProbeResult> {
  return new Promise((resolve) => {
    execFile(argv[0]!, argv.slice(1), { timeout: timeoutMs, env, maxBuffer: 64 * 1024 }, (err, stdout, stderr) => {
      const output = `${stdout}${stderr}`.trim().slice(0, 4000);
      resolve(err ? { ok: false, output: output || err.message } : { ok: true, output });
    });
  });
}

/** One probe of a module's health check; `port` is the port probed when the check names none. */
export function probe(check: HealthCheck, host: string, port: number | undefined, env: NodeJS.ProcessEnv): Promise<ProbeResult> {
  switch (check.type) {
    case 'http':
      return httpProbe(host, check.port ?? port ?? 0, check.path, check.timeoutMs);
    case 'tcp':
      return tcpProbe(host, check.port ?? port ?? 0, check.timeoutMs);
    case 'command':
      return commandProbe(check.command, check.timeoutMs, env);
    default: {
      const never: never = check;
      return Promise.resolve({ ok: false, output: `unknown health check ${JSON.stringify(never)}` });
    }
  }
}
