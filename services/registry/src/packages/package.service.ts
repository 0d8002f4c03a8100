import { createHash } from 'node:crypto';
import { ChangeoverError, packageId, type GetPackagesReply, type PackageRef, type PackageSummary, type PublishPackageReply, type PublishPackageRequest, type SignedPackage } from '@changeover/contracts';
import type { z } from 'zod';
import { RegistryEvents, streams, type RegistryEvent } from '../events/registry.events.js';
import type { Counters, Logger } from '../observability.js';
import type { BlobStore } from './blob.store.js';
import { assertNotNewFromRetiredKey, checkManifest, contentHash, judgeSignature, prunableVersions, referencedBlobs, type SignaturePolicy, type SignatureJudgement } from './package.rules.js';
import type { PackageRepository } from './package.repository.js';

export interface PackagePolicy extends SignaturePolicy {
  maxModuleBytes: number;
  retainVersions: number;
}

/** A blob spooled to a file by the image reader, which measured its size and digest while writing it. */
export interface FileBlob {
  file: string;
  size: number;
  digest: string;
}

/** One package to store: its signed manifest, the blobs that come with it, and where it came from (an image file). */
export interface PublishItem {
  pkg: SignedPackage;
  blobs: ReadonlyMap<string, Uint8Array | FileBlob>;
  source?: string;
}

const facts = (b: Uint8Array | FileBlob) => (b instanceof Uint8Array ? { size: b.length, digest: sha256(b) } : { size: b.size, digest: b.digest });

interface Prepared extends PublishItem {
  id: string;
  hash: string;
  judgement: SignatureJudgement;
  referenced: Map<string, number>;
}

const sha256 = (b: Uint8Array) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** Publishing, reading and retention of packages (claims 1, 2, 11, 25, 26). */
export class PackageService {
  constructor(
    private readonly repo: PackageRepository,
    private readonly blobs: BlobStore,
    private readonly events: RegistryEvents,
    private readonly policy: PackagePolicy,
    private readonly counters: Counters,
    private readonly log: Logger,
  ) {}

  async publish(req: PublishPackageRequest): Promise<PublishPackageReply> {
    const blobs = new Map(Object.entries(req.blobs).map(([d, b64]) => [d, Buffer.from(b64, 'base64')]));
    const [reply] = await this.publishAll([{ pkg: req.package, blobs }]);
    return reply!;
  }

  /**
   * Stores packages all or nothing: every check runs before anything is written; blobs go to the
   * object store first and rows into one transaction; blobs written for a batch that then fails
   * are collected again. `name@version` is immutable: same content is a no-op, other content 409.
   */
  async publishAll(items: readonly PublishItem[], now = new Date()): Promise<PublishPackageReply[]> {
    try {
      return await this.publishChecked(items, now);
    } catch (e) {
      this.counters.inc('registry_publish_rejected_total', 1, { code: e instanceof ChangeoverError ? e.code : 'INTERNAL' });
      throw e;
    }
  }

  private async publishChecked(items: readonly PublishItem[], now: Date): Promise<PublishPackageReply[]> {
    const prepared = items.map((item) => this.prepare(item));
    const seen = new Map<string, string>();
    for (const p of prepared) {
      const other = seen.get(p.id);
      if (other !== undefined && other !== p.hash) throw new ChangeoverError('CONFLICT', `${at(p)}package ${p.id} appears twice with different content`, { package: p.id });
      seen.set(p.id, p.hash);
    }
    const existing = await this.repo.contentHashes(prepared.map((p) => p.pkg.manifest));
    for (const p of prepared) {
      const hash = existing.get(p.id);
      if (hash !== undefined && hash !== p.hash) throw conflict(p);
    }
    const toStore = prepared.filter((p) => !existing.has(p.id));
    for (const p of toStore) assertNotNewFromRetiredKey(p.id, p.judgement);
    await this.checkStoredBlobs(toStore);
    const created: string[] = [];
    let inserted: Set<string>;
    try {
      for (const p of toStore) {
        for (const [digest, blob] of p.blobs) {
          const isNew = blob instanceof Uint8Array ? await this.blobs.putBytes(digest, blob, this.policy.maxModuleBytes) : await this.blobs.putFile(digest, blob, this.policy.maxModuleBytes);
          if (isNew) created.push(digest);
        }
      }
      inserted = await this.repo.insertAll(
        toStore.map((p) => ({ manifest: p.pkg.manifest, signature: p.pkg.signature ?? null, verdict: p.judgement.verdict, signedBy: p.judgement.signedBy, contentHash: p.hash })),
        (id) => conflict(prepared.find((p) => p.id === id)!),
        () => this.checkStoredBlobs(toStore, true),
        // The events commit with the rows: a failed append stores neither (and the new blobs are collected below).
        (tx, created) => this.events.appendIn(tx, this.publishedEvents(prepared.filter((p) => created.has(p.id)), now)),
      );
    } catch (e) {
      await this.repo.collectBlobs(created, (d) => this.blobs.delete(d)).catch((gc: unknown) => this.log.error({ err: gc, digests: created }, 'blob collection failed'));
      throw e;
    }
    this.counters.inc('registry_packages_published_total', inserted.size);
    for (const name of new Set(prepared.filter((p) => inserted.has(p.id)).map((p) => p.pkg.manifest.name))) await this.applyRetention(name, now);
    return prepared.map((p) => ({
      package: { name: p.pkg.manifest.name, version: p.pkg.manifest.version },
      created: inserted.has(p.id),
      contentHash: p.hash,
      signatureVerdict: p.judgement.verdict,
      signedBy: p.judgement.signedBy,
    }));
  }

  private publishedEvents(created: readonly Prepared[], now: Date): RegistryEvent[] {
    return created.map((p) =>
      RegistryEvents.event(streams.package(p.pkg.manifest.name), 'package.published', {
        package: { name: p.pkg.manifest.name, version: p.pkg.manifest.version },
        digests: [...p.referenced.keys()],
        signedBy: p.judgement.signedBy,
        signatureVerdict: p.judgement.verdict,
        at: now.toISOString(),
      }),
    );
  }

  /** Pure checks of one item: manifest rules, signature, and the blobs it carries. */
  private prepare(item: PublishItem): Prepared {
    const { manifest } = item.pkg;
    const id = packageId(manifest);
    try {
      checkManifest(manifest, this.policy.maxModuleBytes);
      const judgement = judgeSignature(item.pkg, this.policy);
      const referenced = referencedBlobs(manifest);
      for (const [digest, blob] of item.blobs) {
        const size = referenced.get(digest);
        if (size === undefined) throw new ChangeoverError('VALIDATION_FAILED', `package ${id}: blobs.${digest}: no module references this digest`, { package: id, field: `blobs.${digest}` });
        const { size: length, digest: actual } = facts(blob);
        if (length > this.policy.maxModuleBytes) throw new ChangeoverError('TOO_LARGE', `package ${id}: blob ${digest} is ${length} bytes, over the limit of ${this.policy.maxModuleBytes}`, { package: id, digest });
        if (actual !== digest) throw new ChangeoverError('DIGEST_MISMATCH', `package ${id}: blob content hashes to ${actual}, not ${digest}`, { package: id, digest, actual });
        if (length !== size) throw new ChangeoverError('DIGEST_MISMATCH', `package ${id}: module size ${size} differs from the blob's ${length} bytes`, { package: id, digest });
      }
      return { ...item, id, hash: contentHash(manifest), judgement, referenced };
    } catch (e) {
      if (e instanceof ChangeoverError && item.source) throw new ChangeoverError(e.code, `${item.source}: ${e.message}`, { ...e.details, file: item.source });
      throw e;
    }
  }

  /** Every referenced blob that does not come with the item must already be stored, with the declared size. */
  private async checkStoredBlobs(items: readonly Prepared[], includeCarried = false): Promise<void> {
    for (const p of items) {
      for (const [digest, size] of p.referenced) {
        if (!includeCarried && p.blobs.has(digest)) continue;
        const stored = await this.blobs.size(digest);
        const field = `manifest.modules.${p.pkg.manifest.modules.findIndex((m) => m.digest === digest)}.digest`;
        if (stored === null) throw new ChangeoverError('VALIDATION_FAILED', `${at(p)}package ${p.id}: ${field}: blob ${digest} is neither uploaded nor included`, { package: p.id, digest, field, ...(p.source ? { file: p.source } : {}) });
        if (stored !== size) throw new ChangeoverError('DIGEST_MISMATCH', `${at(p)}package ${p.id}: ${field}: declared size ${size}, stored blob has ${stored} bytes`, { package: p.id, digest });
      }
    }
  }

  /** Streams one module blob into the store (REST PUT /blobs/:digest); stored only if the digest matches. */
  async uploadBlob(digest: string, body: AsyncIterable<Uint8Array>): Promise<{ digest: string; created: boolean; size: number }> {
    try {
      const created = await this.blobs.putStream(digest, body, this.policy.maxModuleBytes);
      return { digest, created, size: (await this.blobs.size(digest)) ?? 0 };
    } catch (e) {
      this.counters.inc('registry_blob_uploads_rejected_total', 1, { code: e instanceof ChangeoverError ? e.code : 'INTERNAL' });
      throw e;
    }
  }

  /** Signed manifests by name@version; NOT_FOUND names every missing one. */
  async getPackages(refs: readonly PackageRef[]): Promise<z.infer<typeof GetPackagesReply>> {
    const found = await this.repo.get(refs);
    const missing = refs.map(packageId).filter((id) => !found.has(id));
    if (missing.length > 0) throw new ChangeoverError('NOT_FOUND', `unknown package${missing.length > 1 ? 's' : ''} ${missing.slice(0, 20).join(', ')}`, { missing: missing.slice(0, 100) });
    return { packages: refs.map((r) => stripSummary(found.get(packageId(r))!)) };
  }

  async getPackage(ref: PackageRef): Promise<SignedPackage & { summary: PackageSummary }> {
    const found = (await this.repo.get([ref])).get(packageId(ref));
    if (!found) throw new ChangeoverError('NOT_FOUND', `unknown package ${packageId(ref)}`);
    return found;
  }

  list(name: string | undefined, limit: number): Promise<PackageSummary[]> {
    return this.repo.list(name, limit);
  }

  /** Prunes versions beyond the retention count, never one installed on a node or used by an unfinished rollout. */
  async applyRetention(name: string, now = new Date()): Promise<string[]> {
    if (this.policy.retainVersions <= 0) return [];
    const prunable = prunableVersions(await this.repo.versions(name), this.policy.retainVersions, await this.repo.protectedVersions(name));
    if (prunable.length === 0) return [];
    const pruned = await this.repo.deleteVersions(
      name,
      prunable,
      (d) => this.blobs.delete(d),
      (tx, deleted) => this.events.appendIn(tx, deleted.map((version) => RegistryEvents.event(streams.package(name), 'package.pruned', { package: { name, version }, at: now.toISOString() }))),
    );
    this.counters.inc('registry_packages_pruned_total', pruned.length);
    return pruned;
  }
}

const at = (p: PublishItem) => (p.source ? `${p.source}: ` : '');
const conflict = (p: Prepared) => new ChangeoverError('CONFLICT', `${at(p)}package ${p.id} already exists with different content (name@version is immutable)`, { package: p.id });
const stripSummary = ({ manifest, signature }: SignedPackage): SignedPackage => (signature ? { manifest, signature } : { manifest });
