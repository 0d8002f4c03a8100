import { describe, expect, it } from '@jest/globals';
import { createServer, type Server } from 'node:net';
import { bindSocket, SocketTable } from './listen-sockets.js';

const listen = (port = 0) =>
  new Promise<Server>((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(port, '127.0.0.1', () => resolve(s));
  });
const portOf = (s: Server) => (s.address() as { port: number }).port;
const close = (s: Server) => new Promise<void>((r) => s.close(() => r()));

describe('agent-owned listening sockets', () => {
  it('binds the requested port, or any free one for 0', () => {
    const any = bindSocket('127.0.0.1', 0);
    expect(any.port).toBeGreaterThan(0);
    any.close();
    const again = bindSocket('127.0.0.1', any.port);
    expect(again.port).toBe(any.port);
    again.close();
  });

  it('refuses a port another socket listens on, instead of handing out an unbound socket', async () => {
    const taken = await listen();
    expect(() => bindSocket('127.0.0.1', portOf(taken))).toThrow(expect.objectContaining({ code: 'UNAVAILABLE', message: expect.stringMatching(/in use/) }));
    await close(taken);
  });

  it('waits for a port that is still held, and gives up at the deadline', async () => {
    const taken = await listen();
    const port = portOf(taken);
    const table = new SocketTable();
    await expect(table.acquire('127.0.0.1', port, Date.now() + 200)).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    const waiting = table.acquire('127.0.0.1', port, Date.now() + 10_000);
    setTimeout(() => void close(taken), 150);
    const s = await waiting;
    expect(s.port).toBe(port);
    expect(table.get('127.0.0.1', port)).toBe(s);
    table.closeAll();
  });
});
