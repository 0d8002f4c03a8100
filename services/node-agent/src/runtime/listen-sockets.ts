import * as net from 'node:net';
import { ChangeoverError } from '@changeover/contracts';

// The agent owns each module's listening socket and hands it to every process that serves it, as
// systemd socket activation does. The socket is bound here but never accepted on in the agent: the
// module process calls listen() on its fd 3, and while old and new processes both hold it the
// kernel queues connections for whichever accepts, so no connection is refused during a changeover.

interface ServerHandle {
  fd: number;
  getsockname(out: { port?: number; address?: string }): number;
  close(cb?: () => void): void;
}

type CreateServerHandle = (address: string, port: number, addressType: 4 | 6, fd?: number, flags?: number) => ServerHandle | number;

// Node's own helper (the one the cluster module uses to share a bound handle): it binds without listening.
const createServerHandle = (net as unknown as { _createServerHandle: CreateServerHandle })._createServerHandle;

export interface BoundSocket {
  fd: number;
  host: string;
  port: number;
  close(): void;
  /** The native handle (what can be sent to another process over an IPC channel). */
  handle?: unknown;
}

/**
 * Binds host:port (0 for any free port) without accepting on it. libuv defers an EADDRINUSE from
 * bind() to the later listen(), so the address is checked here: an unbound socket handed to a module
 * would be bound by its listen() to a random port on every interface.
 */
export function bindSocket(host: string, port: number): BoundSocket {
  const handle = createServerHandle(host, port, net.isIPv6(host) ? 6 : 4);
  if (typeof handle === 'number') throw new ChangeoverError('UNAVAILABLE', `cannot bind ${host}:${port} (errno ${handle})`);
  const name: { port?: number; address?: string } = {};
  const err = handle.getsockname(name);
  if (err !== 0 || !name.port || (port !== 0 && name.port !== port)) {
    handle.close();
    throw new ChangeoverError('UNAVAILABLE', `cannot bind ${host}:${port}: the address is in use`, { host, port });
  }
  return { fd: handle.fd, host, port: name.port, close: () => handle.close(), handle };
}

/** One socket per host:port, shared by every version of the module that serves it. */
export class SocketTable {
  private readonly sockets = new Map<string, BoundSocket>();

  get(host: string, port: number): BoundSocket {
    const key = `${host}:${port}`;
    let s = this.sockets.get(key);
    if (!s) {
      s = bindSocket(host, port);
      this.sockets.set(key, s);
    }
    return s;
  }

  /**
   * Binds host:port, trying again until `deadlineAt` while the address is in use: after a crash the
   * port may still be held for a moment (a dying process, or a connection that took it as its local port).
   */
  async acquire(host: string, port: number, deadlineAt: number): Promise<BoundSocket> {
    for (;;) {
      try {
        return this.get(host, port);
      } catch (e) {
        if (Date.now() >= deadlineAt) throw e;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  /** Takes over a socket bound by an earlier agent run (handed over through the launcher). */
  adopt(host: string, port: number, handle: { fd: number; close(): void }): void {
    this.sockets.get(`${host}:${port}`)?.close();
    this.sockets.set(`${host}:${port}`, { fd: handle.fd, host, port, close: () => handle.close(), handle });
  }

  all(): BoundSocket[] {
    return [...this.sockets.values()];
  }

  closeAll(): void {
    for (const s of this.sockets.values()) s.close();
    this.sockets.clear();
  }
}
