import { ChangeoverError, packageId, type PackageRef, type SoftwareUpdate } from '@changeover/contracts';
import type { Counters } from '../observability.js';
import type { PackageService } from '../packages/package.service.js';
import { parseImage, type ImageLimits, type ParsedImage } from './image.parser.js';

export interface ImportResult {
  update: SoftwareUpdate;
  packages: PackageRef[];
}

/** Update images (claims 20–23): every package in the image is stored, or none is. */
export class ImageService {
  constructor(
    private readonly packages: PackageService,
    private readonly limits: ImageLimits,
    private readonly counters: Counters,
  ) {}

  /** The image as bytes or as a stream (an HTTP body, an upload read from the object store); it is never held whole. */
  async import(source: Uint8Array | AsyncIterable<Uint8Array>): Promise<ImportResult> {
    let image: ParsedImage | undefined;
    try {
      image = await parseImage(source, this.limits);
      const result = await this.store(image);
      this.counters.inc('registry_images_imported_total');
      return result;
    } catch (e) {
      this.counters.inc('registry_images_rejected_total', 1, { code: e instanceof ChangeoverError ? e.code : 'INTERNAL' });
      throw e;
    } finally {
      await image?.dispose();
    }
  }

  private async store(image: ParsedImage): Promise<ImportResult> {
    const inImage = new Set(image.packages.map((p) => packageId(p.pkg.manifest)));
    const outside: { ref: PackageRef; field: string }[] = [];
    image.update.targets.forEach((t, i) => t.packages.forEach((ref, j) => !inImage.has(packageId(ref)) && outside.push({ ref, field: `update.targets.${i}.packages.${j}` })));
    if (outside.length > 0) {
      await this.packages.getPackages(outside.map((o) => o.ref)).catch((e: unknown) => {
        const missing = outside.find((o) => e instanceof ChangeoverError && String(e.details?.['missing'] ?? '').includes(packageId(o.ref)));
        throw new ChangeoverError('VALIDATION_FAILED', `update.json: ${missing?.field ?? 'update.targets'}: package ${missing ? packageId(missing.ref) : ''} is neither in the image nor in the registry`, { file: 'update.json', field: missing?.field });
      });
    }
    // Blobs the packages need but the image lacks are looked up in the store by publishAll, which names the file and field.
    // Signatures and digests are all checked there before the first blob is written.
    const replies = await this.packages.publishAll(
      image.packages.map((p) => ({
        pkg: p.pkg,
        source: p.path,
        blobs: new Map(p.pkg.manifest.modules.filter((m) => image.blobs.has(m.digest)).map((m) => [m.digest, image.blobs.get(m.digest)!])),
      })),
    );
    return { update: image.update, packages: replies.map((r) => r.package) };
  }
}
