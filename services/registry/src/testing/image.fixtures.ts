import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { create } from 'tar';
import { packageId, type SignedPackage } from '@changeover/contracts';

export interface ImageSpec {
  update: unknown;
  packages: SignedPackage[];
  blobs: Map<string, Buffer>;
  /** Files listed in update.json but left out of the archive. */
  omitFiles?: string[];
  /** Replace a file's bytes (path inside the image). */
  replace?: Record<string, Buffer>;
}

/** Builds an update image (.tar.gz) the way a release pipeline would. */
export async function makeImage(spec: ImageSpec): Promise<Buffer> {
  const dir = await mkdtemp(join(tmpdir(), 'changeover-image-'));
  try {
    const files = new Map<string, Buffer>();
    const packages = spec.packages.map((p) => {
      const path = `packages/${packageId(p.manifest)}.json`;
      files.set(path, Buffer.from(JSON.stringify(p)));
      return path;
    });
    const blobs: Record<string, string> = {};
    for (const [digest, bytes] of spec.blobs) {
      const path = `blobs/${digest.slice(7)}`;
      blobs[digest] = path;
      files.set(path, bytes);
    }
    files.set('update.json', Buffer.from(JSON.stringify({ update: spec.update, packages, blobs })));
    for (const [path, bytes] of Object.entries(spec.replace ?? {})) files.set(path, bytes);
    for (const path of spec.omitFiles ?? []) files.delete(path);
    for (const [path, bytes] of files) {
      await mkdir(dirname(join(dir, path)), { recursive: true });
      await writeFile(join(dir, path), bytes);
    }
    const out = join(dir, '..', `${dir.split('/').pop()}.tar.gz`);
    await create({ gzip: true, file: out, cwd: dir, portable: true }, [...files.keys()]);
    const gz = await readFile(out);
    await rm(out, { force: true });
    return gz;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
