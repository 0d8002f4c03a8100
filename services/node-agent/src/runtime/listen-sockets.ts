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
}

/** Binds host:port (0 for any free port) without accepting on it. */
export function bindSocket(host: string, port: number): BoundSocket {
  const handle = createServerHandle(host, port, net.isIPv6(host) ? 6 : 4);
  if (typeof handle === 'number') throw new ChangeoverError('UNAVAILABLE', `cannot bind ${host}:${port} (errno ${handle})`);
  const name: { port?: number } = {};
  handle.getsockname(name);
  return { fd: handle.fd, host, port: name.port ?? port, close: () => handle.close() };
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

  closeAll(): void {
    for (const s of this.sockets.values()) s.close();
    this.sockets.clear();
  }
}
