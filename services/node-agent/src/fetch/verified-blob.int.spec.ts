import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { digestOf } from '../testing/packages.js';
import { writeVerifiedBlob } from './verified-blob.js';

const CONTENT = randomBytes(3 * 128 * 1024 + 17);

async function* chunksOf(bytes: Buffer, size = 128 * 1024, failAfter?: number): AsyncGenerator<Uint8Array> {
  for (let at = 0, n = 0; at < bytes.length; at += size, n++) {
    if (failAfter !== undefined && n === failAfter) throw new Error('connection lost');
    yield bytes.subarray(at, at + size);
  }
}

describe('writeVerifiedBlob', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'verified-blob-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const target = (name: string) => join(dir, name);

  it('writes a blob that arrives in chunks and matches its digest and size', async () => {
    expect(await writeVerifiedBlob(target('good'), { digest: digestOf(CONTENT), size: CONTENT.length }, chunksOf(CONTENT))).toBe(CONTENT.length);
    expect(readFileSync(target('good')).equals(CONTENT)).toBe(true);
    expect(readdirSync(dir)).toEqual(['good']);
  });

  it.each([
    ['another digest', { digest: digestOf('other'), size: CONTENT.length }, () => chunksOf(CONTENT), 'DIGEST_MISMATCH'],
    ['more bytes than the manifest gives', { digest: digestOf(CONTENT), size: CONTENT.length - 1 }, () => chunksOf(CONTENT), 'TOO_LARGE'],
    ['fewer bytes than the manifest gives', { digest: digestOf(CONTENT.subarray(1)), size: CONTENT.length }, () => chunksOf(CONTENT.subarray(1)), 'DIGEST_MISMATCH'],
  ] as const)('refuses %s with a typed error and leaves no file', async (_what, expected, source, code) => {
    await expect(writeVerifiedBlob(target('bad'), expected, source())).rejects.toMatchObject({ code });
    expect(readdirSync(dir)).toEqual(['good']);
  });

  it('passes a failed read on and leaves no file', async () => {
    await expect(writeVerifiedBlob(target('cut'), { digest: digestOf(CONTENT), size: CONTENT.length }, chunksOf(CONTENT, 128 * 1024, 2))).rejects.toThrow('connection lost');
    expect(readdirSync(dir)).toEqual(['good']);
  });
});
