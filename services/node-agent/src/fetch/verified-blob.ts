import { createHash, randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { ChangeoverError } from '@changeover/contracts';

/**
 * Writes a module blob that arrives in chunks to `path`, checked against the signed manifest's
 * digest (`sha256:<hex>`) and size as the chunks go by: each chunk is hashed and written before the
 * next is taken, so memory holds one chunk whatever the module's size. The bytes go to a temp file
 * beside the target (`.tmp`, which the store removes at start-up after a crash) that becomes the
 * blob only once the whole content matches (fsync, rename, fsync dir). A mismatch (DIGEST_MISMATCH),
 * more bytes than the manifest says (TOO_LARGE) or a failed read leaves nothing behind.
 */
export async function writeVerifiedBlob(path: string, expected: { digest: string; size: number }, chunks: AsyncIterable<Uint8Array>): Promise<number> {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const hash = createHash('sha256');
  let written = 0;
  const fh = await open(tmp, 'wx', 0o600);
  try {
    try {
      for await (const chunk of chunks) {
        written += chunk.length;
        if (written > expected.size) throw new ChangeoverError('TOO_LARGE', `module content is over the ${expected.size} bytes its manifest gives`, { expected: expected.size });
        hash.update(chunk);
        await fh.write(chunk);
      }
      await fh.sync();
    } finally {
      await fh.close();
    }
    const actual = `sha256:${hash.digest('hex')}`;
    if (actual !== expected.digest) throw new ChangeoverError('DIGEST_MISMATCH', `module content has digest ${actual}, expected ${expected.digest}`, { expected: expected.digest, actual });
    if (written !== expected.size) throw new ChangeoverError('DIGEST_MISMATCH', `module content is ${written} bytes, its manifest gives ${expected.size}`, { expected: expected.size, actual: written });
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
  return written;
}
