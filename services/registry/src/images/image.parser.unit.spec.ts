import { describe, expect, it } from '@jest/globals';
import { gzipSync } from 'node:zlib';
import { makeImage } from '../testing/image.fixtures.js';
import { buildPackage, sign } from '../testing/registry.fixtures.js';
import { parseImage } from './image.parser.js';

const limits = { maxImageBytes: 1 << 20, maxModuleBytes: 1 << 16 };
const app = buildPackage('app', '1.0.0', [{ name: 'bin', processorType: 'x86_64', content: 'app binary' }]);
const update = { description: 'u', targets: [{ classes: ['web'], packages: [{ name: 'app', version: '1.0.0' }] }] };

describe('parseImage', () => {
  it('reads update.json, the package files and the blobs', async () => {
    const image = await parseImage(await makeImage({ update, packages: [sign(app)], blobs: app.blobs }), limits);
    expect(image.update.targets).toHaveLength(1);
    expect(image.packages.map((p) => p.pkg.manifest.name)).toEqual(['app']);
    expect([...image.blobs.keys()]).toEqual([...app.blobs.keys()]);
    expect(image.missing).toEqual([]);
    await image.dispose();
  });

  it('names a blob listed in update.json but absent from the archive', async () => {
    const gz = await makeImage({ update, packages: [sign(app)], blobs: app.blobs, omitFiles: [`blobs/${[...app.blobs.keys()][0]!.slice(7)}`] });
    await expect(parseImage(gz, limits)).rejects.toMatchObject({ code: 'VALIDATION_FAILED', message: expect.stringMatching(/^update\.json: blobs\.sha256:[a-f0-9]+: file blobs\/.* is not in the image/) });
  });

  it('reports module digests the image does not carry, with file and field', async () => {
    const image = await parseImage(await makeImage({ update, packages: [sign(app)], blobs: new Map() }), limits);
    expect(image.missing).toEqual([{ digest: app.manifest.modules[0]!.digest, file: 'packages/app@1.0.0.json', field: 'manifest.modules.0.digest' }]);
    await image.dispose();
  });

  it('refuses a blob whose content does not hash to its name', async () => {
    const [d] = [...app.blobs.keys()];
    const gz = await makeImage({ update, packages: [sign(app)], blobs: new Map([[d!, Buffer.from('tampered!!')]]) });
    await expect(parseImage(gz, limits)).rejects.toMatchObject({ code: 'DIGEST_MISMATCH' });
  });

  it('names the field of a malformed update.json', async () => {
    const gz = await makeImage({ update: { targets: [{ classes: ['web'], packages: [{ name: 'app', version: 'one' }] }] }, packages: [sign(app)], blobs: app.blobs });
    await expect(parseImage(gz, limits)).rejects.toMatchObject({ message: expect.stringContaining('update.json: update.targets.0.packages.0.version') });
  });

  it('names a package file that is not JSON', async () => {
    const gz = await makeImage({ update, packages: [sign(app)], blobs: app.blobs, replace: { 'packages/app@1.0.0.json': Buffer.from('{not json') } });
    await expect(parseImage(gz, limits)).rejects.toMatchObject({ message: expect.stringContaining('packages/app@1.0.0.json: not JSON') });
  });

  it('refuses a truncated archive and one that is not gzip at all', async () => {
    const gz = await makeImage({ update, packages: [sign(app)], blobs: app.blobs });
    await expect(parseImage(gz.subarray(0, Math.floor(gz.length / 2)), limits)).rejects.toMatchObject({ code: 'VALIDATION_FAILED', message: expect.stringContaining('not a complete .tar.gz') });
    await expect(parseImage(Buffer.from('plain text'), limits)).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
    await expect(parseImage(gzipSync(Buffer.alloc(700, 7)), limits)).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
  });

  it('refuses an image over the size limit and a blob over the module limit', async () => {
    const gz = await makeImage({ update, packages: [sign(app)], blobs: app.blobs });
    await expect(parseImage(gz, { ...limits, maxImageBytes: 100 })).rejects.toMatchObject({ code: 'TOO_LARGE' });
    await expect(parseImage(gz, { ...limits, maxModuleBytes: 3 })).rejects.toMatchObject({ code: 'TOO_LARGE' });
  });
});
