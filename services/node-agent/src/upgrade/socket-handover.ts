import type { BoundSocket } from '../runtime/listen-sockets.js';

// The modules' listening sockets outlive an agent upgrade: the old agent sends them to the launcher
// over the IPC channel the launcher gave it (SCM_RIGHTS under the hood), the launcher holds them while
// the new version starts and hands them on when it asks. Without the channel (no launcher) there is
// nothing to do: the processes still run, and a later changeover binds the port again.

export const HANDOVER_MESSAGES = {
  socket: 'changeover-socket',
  held: 'changeover-sockets-held',
  request: 'changeover-sockets-request',
  done: 'changeover-sockets-done',
} as const;

export interface HandedSocket {
  host: string;
  port: number;
  handle: { fd: number; close(): void };
}

interface Msg {
  kind?: string;
  host?: string;
  port?: number;
  count?: number;
}

const send = (msg: Msg, handle?: unknown): Promise<void> =>
  new Promise((resolve, reject) => {
    process.send!(msg, handle as never, {}, (e) => (e ? reject(e) : resolve()));
  });

/** Old agent, before it exits for the upgrade: the launcher acknowledges holding every socket. */
export async function sendSockets(sockets: BoundSocket[], timeoutMs: number): Promise<boolean> {
  if (!process.send || !process.connected) return false;
  const acked = new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => done(false), timeoutMs);
    const onMessage = (m: Msg) => {
      if (m?.kind === HANDOVER_MESSAGES.held) done(m.count === sockets.length);
    };
    const done = (ok: boolean) => {
      clearTimeout(timer);
      process.off('message', onMessage);
      resolve(ok);
    };
    process.on('message', onMessage);
  });
  for (const s of sockets) await send({ kind: HANDOVER_MESSAGES.socket, host: s.host, port: s.port }, s.handle);
  await send({ kind: HANDOVER_MESSAGES.held, count: sockets.length });
  return acked;
}

/** New agent, before it applies its set: the sockets the launcher holds (none without a launcher channel, or after `timeoutMs`). */
export async function receiveSockets(timeoutMs: number): Promise<HandedSocket[]> {
  if (!process.send || !process.connected) return [];
  const got: HandedSocket[] = [];
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => done(), timeoutMs);
    const onMessage = (m: Msg, handle?: HandedSocket['handle']) => {
      if (m?.kind === HANDOVER_MESSAGES.socket && handle && typeof m.host === 'string' && typeof m.port === 'number') got.push({ host: m.host, port: m.port, handle });
      if (m?.kind === HANDOVER_MESSAGES.done) done();
    };
    const done = () => {
      clearTimeout(timer);
      process.off('message', onMessage);
      resolve();
    };
    process.on('message', onMessage);
    void send({ kind: HANDOVER_MESSAGES.request }).catch(() => done());
  });
  // The channel must not keep the agent alive on its own.
  process.channel?.unref();
  return got;
}
