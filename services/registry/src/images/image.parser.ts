import { createHash } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { Parser, type ReadEntry } from 'tar';
import { ChangeoverError, parse, SignedPackage, UpdateImageIndex, type SoftwareUpdate } from '@changeover/contracts';

// An update image (claim 20): a .tar.gz with update.json, signed package files and module blobs.

export interface ImageBlob {
  digest: string;
  path: string;
  bytes: Buffer;
}

export interface ImagePackage {
  path: string;
  pkg: SignedPackage;
}

export interface ParsedImage {
  update: SoftwareUpdate;
  packages: ImagePackage[];
  blobs: Map<string, ImageBlob>;
  /** Module digests a package names that the image does not carry (the store may have them). */
  missing: { digest: string; file: string; field: string }[];
}

export interface ImageLimits {
  maxImageBytes: number;
  maxModuleBytes: number;
}

const bad = (message: string, details: Record<string, unknown> = {}) => new ChangeoverError('VALIDATION_FAILED', message, details);
const normalise = (p: string) => p.replace(/^\.\//, '').replace(/^\/+/, '');
const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** Unpacks the archive into memory: every error names the file (and field) at fault. */
export async function parseImage(gz: Buffer, limits: ImageLimits): Promise<ParsedImage> {
  const files = await untar(gunzip(gz, limits.maxImageBytes), limits);
  const indexBytes = files.get('update.json');
  if (!indexBytes) throw bad('image has no update.json at its root', { file: 'update.json' });
  const index = parse(UpdateImageIndex, readJson('update.json', indexBytes), 'update.json');
  const packages = index.packages.map((path, i) => {
    const bytes = files.get(normalise(path));
    if (!bytes) throw bad(`update.json: packages.${i}: file ${path} is not in the image`, { file: 'update.json', field: `packages.${i}` });
    return { path, pkg: parse(SignedPackage, readJson(path, bytes), path) };
  });
  const blobs = new Map<string, ImageBlob>();
  for (const [digest, path] of Object.entries(index.blobs)) {
    const bytes = files.get(normalise(path));
    if (!bytes) throw bad(`update.json: blobs.${digest}: file ${path} is not in the image`, { file: 'update.json', field: `blobs.${digest}` });
    if (bytes.length > limits.maxModuleBytes) throw new ChangeoverError('TOO_LARGE', `${path}: ${bytes.length} bytes, over the module limit of ${limits.maxModuleBytes}`, { file: path });
    const actual = sha256(bytes);
    if (actual !== digest) throw new ChangeoverError('DIGEST_MISMATCH', `${path}: content digest ${actual} differs from ${digest} in update.json`, { file: path, field: `blobs.${digest}` });
    blobs.set(digest, { digest, path, bytes });
  }
  const missing: ParsedImage['missing'] = [];
  for (const { path, pkg } of packages) {
    pkg.manifest.modules.forEach((m, i) => {
      if (!blobs.has(m.digest)) missing.push({ digest: m.digest, file: path, field: `manifest.modules.${i}.digest` });
      else if (blobs.get(m.digest)!.bytes.length !== m.size) {
        throw new ChangeoverError('DIGEST_MISMATCH', `${path}: manifest.modules.${i}.size: ${m.size} differs from the blob's ${blobs.get(m.digest)!.bytes.length} bytes`, { file: path, field: `manifest.modules.${i}.size` });
      }
    });
  }
  return { update: index.update, packages, blobs, missing };
}

function gunzip(gz: Buffer, maxBytes: number): Buffer {
  if (gz.length > maxBytes) throw new ChangeoverError('TOO_LARGE', `image is ${gz.length} bytes, over the limit of ${maxBytes}`);
  try {
    return gunzipSync(gz, { maxOutputLength: maxBytes });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ERR_BUFFER_TOO_LARGE') throw new ChangeoverError('TOO_LARGE', `image unpacks to more than ${maxBytes} bytes`);
    throw bad(`image is not a complete .tar.gz: ${(e as Error).message}`, { file: '(archive)' });
  }
}

function readJson(file: string, bytes: Buffer): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw bad(`${file}: not JSON (${(e as Error).message})`, { file });
  }
}

async function untar(tarBytes: Buffer, limits: ImageLimits): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  let failure: ChangeoverError | null = null;
  const fail = (e: ChangeoverError) => (failure ??= e);
  const parser = new Parser({
    strict: true,
    onwarn: (_code: string, message: string) => fail(bad(`image is not a valid tar archive: ${message}`, { file: '(archive)' })),
    onReadEntry: (entry: ReadEntry) => {
      if (entry.type !== 'File' && entry.type !== 'OldFile') return void entry.resume();
      const chunks: Buffer[] = [];
      let size = 0;
      entry.on('data', (c: Buffer) => {
        size += c.length;
        if (size <= limits.maxImageBytes) chunks.push(c);
      });
      entry.on('end', () => files.set(normalise(entry.path), Buffer.concat(chunks)));
    },
  });
  await new Promise<void>((resolve) => {
    parser.on('error', (e: Error) => {
      fail(bad(`image is not a valid tar archive: ${e.message}`, { file: '(archive)' }));
      resolve();
    });
    parser.on('close', () => resolve());
    parser.end(tarBytes);
  });
  if (failure) throw failure;
  if (files.size === 0) throw bad('image holds no files', { file: '(archive)' });
  return files;
}
