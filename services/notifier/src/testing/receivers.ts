import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';

export interface Received {
  path: string;
  headers: IncomingMessage['headers'];
  body: string;
}

/** How one path answers: a status, a delay before answering, or a dropped connection. */
export type Behaviour = { status?: number; delayMs?: number; hang?: boolean; destroy?: boolean };

/** A real HTTP server standing in for webhook and Slack endpoints; behaviour per path, settable at any time. */
export async function startHttpReceiver() {
  const received: Received[] = [];
  const behaviours = new Map<string, Behaviour | ((n: number) => Behaviour)>();
  const counts = new Map<string, number>();
  const open = new Set<ServerResponse>();
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = req.url ?? '/';
      const n = (counts.get(path) ?? 0) + 1;
      counts.set(path, n);
      received.push({ path, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      const b = behaviours.get(path);
      const how = typeof b === 'function' ? b(n) : (b ?? {});
      if (how.destroy) return void req.socket.destroy();
      if (how.hang) return void open.add(res);
      const answer = () => res.writeHead(how.status ?? 200, { 'content-type': 'text/plain' }).end('ok');
      if (how.delayMs) setTimeout(answer, how.delayMs);
      else answer();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: (path: string) => `http://127.0.0.1:${port}${path}`,
    received,
    at: (path: string) => received.filter((r) => r.path === path),
    behave: (path: string, how: Behaviour | ((n: number) => Behaviour)) => void behaviours.set(path, how),
    async close() {
      for (const res of open) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
export type HttpReceiver = Awaited<ReturnType<typeof startHttpReceiver>>;

export interface Mail {
  from: string;
  to: string[];
  raw: string;
}

/** A real SMTP server (no TLS, no auth) that keeps every message it accepts. */
export async function startSmtpReceiver() {
  const mails: Mail[] = [];
  const server = new SMTPServer({
    secure: false,
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        mails.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          raw: Buffer.concat(chunks).toString('utf8'),
        });
        callback();
      });
    },
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.server.address() as AddressInfo).port;
  return {
    url: `smtp://127.0.0.1:${port}`,
    mails,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
