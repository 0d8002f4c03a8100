import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { extract as tarExtract } from 'tar-stream';
import { ChangeoverError, parse, SignedPackage, UpdateImageIndex, type SoftwareUpdate } from '@changeover/contracts';

// An update image (claim 20): a .tar.gz with update.json, signed package files and module blobs.
// It is read as a stream (gunzip, then tar entry by entry) and every file is spooled to a private
// temporary directory while it is hashed, so memory stays bounded whatever the image's size and
// whatever order the archive holds its files in (update.json may well come last).

/** A module blob spooled to disk: its size and digest were measured while it was written. */
export interface SpooledBlob {
  digest: string;
  path: string;
  size: number;
  file: string;
}

export interface ImagePackage {
  path: string;
  pkg: SignedPackage;
}

export interface ParsedImage {
  update: SoftwareUpdate;
  packages: ImagePackage[];
  blobs: Map<string, SpooledBlob>;
  /** Module digests a package names that the image does not carry (the store may have them). */
  missing: { digest: string; file: string; field: string }[];
  /** Removes the spooled files; call once the blobs are stored (or the import failed). */
  dispose(): Promise<void>;
}

export interface ImageLimits {
  maxImageBytes: number;
  maxModuleBytes: number;
}

/** update.json and package files are read into memory: they are metadata, never this large. */
const MAX_METADATA_BYTES = 16 * 1024 * 1024;

const bad = (message: string, details: Record<string, unknown> = {}) => new ChangeoverError('VALIDATION_FAILED', message, details);
const normalise = (p: string) => p.replace(/^\.\//, '').replace(/^\/+/, '');

/** Reads the archive; every error names the file (and field) at fault. Nothing is stored here. */
export async function parseImage(source: Uint8Array | AsyncIterable<Uint8Array>, limits: ImageLimits): Promise<ParsedImage> {
  const dir = await mkdtemp(join(tmpdir(), 'changeover-import-'));
  const dispose = () => rm(dir, { recursive: true, force: true });
  try {
    const files = await spool(source instanceof Uint8Array ? [source] : source, dir, limits);
    const indexFile = files.get('update.json');
    if (!indexFile) throw bad('image has no update.json at its root', { file: 'update.json' });
    const index = parse(UpdateImageIndex, await readJson('update.json', indexFile), 'update.json');
    const packages: ImagePackage[] = [];
    for (const [i, path] of index.packages.entries()) {
      const file = files.get(normalise(path));
      if (!file) throw bad(`update.json: packages.${i}: file ${path} is not in the image`, { file: 'update.json', field: `packages.${i}` });
      packages.push({ path, pkg: parse(SignedPackage, await readJson(path, file), path) });
    }
    const blobs = new Map<string, SpooledBlob>();
    for (const [digest, path] of Object.entries(index.blobs)) {
      const file = files.get(normalise(path));
      if (!file) throw bad(`update.json: blobs.${digest}: file ${path} is not in the image`, { file: 'update.json', field: `blobs.${digest}` });
      if (file.digest !== digest) throw new ChangeoverError('DIGEST_MISMATCH', `${path}: content digest ${file.digest} differs from ${digest} in update.json`, { file: path, field: `blobs.${digest}` });
      blobs.set(digest, { digest, path, size: file.size, file: file.file });
    }
    const missing: ParsedImage['missing'] = [];
    for (const { path, pkg } of packages) {
      pkg.manifest.modules.forEach((m, i) => {
        const blob = blobs.get(m.digest);
        if (!blob) missing.push({ digest: m.digest, file: path, field: `manifest.modules.${i}.digest` });
        else if (blob.size !== m.size) {
          throw new ChangeoverError('DIGEST_MISMATCH', `${path}: manifest.modules.${i}.size: ${m.size} differs from the blob's ${blob.size} bytes`, { file: path, field: `manifest.modules.${i}.size` });
        }
      });
    }
    return { update: index.update, packages, blobs, missing, dispose };
  } catch (e) {
    await dispose();
    throw e;
  }
}

interface Spooled {
  file: string;
  size: number;
  digest: string;
}

async function readJson(name: string, f: Spooled): Promise<unknown> {
  if (f.size > MAX_METADATA_BYTES) throw new ChangeoverError('TOO_LARGE', `${name}: ${f.size} bytes, over the limit of ${MAX_METADATA_BYTES} for a metadata file`, { file: name });
  try {
    return JSON.parse(await readFile(f.file, 'utf8'));
  } catch (e) {
    throw bad(`${name}: not JSON (${(e as Error).message})`, { file: name });
  }
}

/** Resolves on 'drain', or at once when the extractor is already destroyed (it will never drain). */
function settled(x: { destroyed: boolean; once(ev: string, f: () => void): unknown; off(ev: string, f: () => void): unknown }): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = () => {
      x.off('drain', done);
      x.off('close', done);
      resolve();
    };
    x.once('drain', done);
    x.once('close', done);
    if (x.destroyed) done();
  });
}

/** gunzip → tar → one hashed temporary file per entry, with backpressure all the way. */
async function spool(source: Iterable<Uint8Array> | AsyncIterable<Uint8Array>, dir: string, limits: ImageLimits): Promise<Map<string, Spooled>> {
  let failure: ChangeoverError | null = null;
  const fail = (e: unknown, what: string) => (failure ??= e instanceof ChangeoverError ? e : bad(`image is not ${what}: ${(e as Error).message}`, { file: '(archive)' }));
  let compressed = 0;
  let unpacked = 0;
  const input = Readable.from(
    (async function* () {
      for await (const chunk of source) {
        compressed += chunk.length;
        if (compressed > limits.maxImageBytes) throw new ChangeoverError('TOO_LARGE', `image is over the limit of ${limits.maxImageBytes} bytes`);
        yield chunk;
      }
    })(),
  );
  const gunzip = createGunzip();
  input.on('error', (e) => gunzip.destroy(e));
  input.pipe(gunzip);
  const extract = tarExtract();
  const feed = (async () => {
    try {
      for await (const chunk of gunzip as AsyncIterable<Buffer>) {
        unpacked += chunk.length;
        if (unpacked > limits.maxImageBytes) throw new ChangeoverError('TOO_LARGE', `image unpacks to more than ${limits.maxImageBytes} bytes`);
        // The reader may stop early (an oversized entry): stop feeding once the extractor is gone.
        if (extract.destroyed) return;
        if (!extract.write(chunk)) await settled(extract);
        if (extract.destroyed) return;
      }
      extract.end(() => undefined);
    } catch (e) {
      fail(e, 'a complete .tar.gz');
      extract.destroy(e as Error);
    }
  })();
  const files = new Map<string, Spooled>();
  let n = 0;
  try {
    for await (const entry of extract) {
      const h = entry.header;
      if (h.type !== 'file' && h.type !== 'contiguous-file') {
        entry.resume();
        continue;
      }
      const name = normalise(h.name);
      // The header says how long the entry is: an oversized one is refused before its bytes are read.
      if ((h.size ?? 0) > limits.maxModuleBytes) throw new ChangeoverError('TOO_LARGE', `${name}: ${h.size} bytes, over the module limit of ${limits.maxModuleBytes}`, { file: name });
      const file = join(dir, String(n++));
      const out = createWriteStream(file);
      const hash = createHash('sha256');
      let size = 0;
      try {
        for await (const chunk of entry as AsyncIterable<Buffer>) {
          size += chunk.length;
          hash.update(chunk);
          if (!out.write(chunk)) await new Promise<void>((r) => (out.once('drain', r), out.once('close', r)));
        }
      } finally {
        out.end();
        await finished(out).catch(() => undefined);
      }
      files.set(name, { file, size, digest: `sha256:${hash.digest('hex')}` });
    }
  } catch (e) {
    fail(e, 'a valid tar archive');
  } finally {
    input.destroy();
    gunzip.destroy();
    await feed;
  }
  if (failure) throw failure;
  if (files.size === 0) throw bad('image holds no files', { file: '(archive)' });
  return files;
}
