import { describe, expect, it } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RestClient } from './client.js';

describe('RestClient raw file bodies', () => {
  it('streams a file as the body with its length and content type (an update image is never read whole)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'changeover-cli-'));
    const bytes = randomBytes(3 * 1024 * 1024 + 17);
    const file = join(dir, 'image.tar.gz');
    await writeFile(file, bytes);
    const server = createServer((req, res) => {
      const hash = createHash('sha256');
      let size = 0;
      req.on('data', (c: Buffer) => {
        size += c.length;
        hash.update(c);
      });
      req.on('end', () => {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ size, sha: hash.digest('hex'), type: req.headers['content-type'], length: req.headers['content-length'] }));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const client = new RestClient(`http://127.0.0.1:${(server.address() as { port: number }).port}`, 'tok');
      const got = await client.request<{ size: number; sha: string; type: string; length: string }>('POST', '/rollouts/from-image', undefined, { file, contentType: 'application/gzip' });
      expect(got).toEqual({ size: bytes.length, sha: createHash('sha256').update(bytes).digest('hex'), type: 'application/gzip', length: String(bytes.length) });
    } finally {
      server.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
