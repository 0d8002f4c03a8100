import { describe, expect, it } from '@jest/globals';
import type { Characteristics, Module, PackageManifest } from './domain.js';
import { selectForNode, selectPackage, traitsKey, type NodeTraits } from './module-selection.js';

const digest = (c: string) => `sha256:${c.repeat(64).slice(0, 64)}`;
const mod = (d: string, processorType: Module['processorType'], requires: Module['requires'] = {}, name = 'bin'): Module => ({ name, version: '1.0.0', processorType, size: 1, digest: digest(d), dependsOn: [], requires });
const pkg = (modules: Module[]): PackageManifest => ({ name: 'p', version: '1.0.0', description: '', modules, requires: {}, provides: [], consumes: [] });
const node = (processorType: 'x86_64' | 'arm64', c: Partial<Characteristics> = {}): NodeTraits => ({ processorType, characteristics: { arch: processorType, os: 'linux', memoryMb: 1024, labels: {}, ...c } });
const picked = (m: PackageManifest, n: NodeTraits) => {
  const r = selectPackage(m, n);
  return r.ok ? r.selected.modules.map((x) => x.digest) : r.reason;
};

describe('module selection shared by the registry and the agent', () => {
  // The windows build comes first: a choice by processor type alone would take it on every node.
  const manifest = pkg([mod('a', 'any', { os: ['windows'] }), mod('b', 'any', { labels: { gpu: 'true' } }), mod('c', 'any'), mod('d', 'arm64')]);

  it('picks by OS and labels among variants of one processor type', () => {
    expect(picked(manifest, node('x86_64', { os: 'windows' }))).toEqual([digest('a')]);
    expect(picked(manifest, node('x86_64', { labels: { gpu: 'true' } }))).toEqual([digest('b')]);
    expect(picked(manifest, node('x86_64'))).toEqual([digest('c')]);
  });

  it('prefers the exact processor type whatever the other characteristics', () => {
    expect(picked(manifest, node('arm64', { labels: { gpu: 'true' } }))).toEqual([digest('d')]);
    expect(picked(manifest, node('arm64', { os: 'windows' }))).toEqual([digest('d')]);
  });

  it('makes the package unsupported, with the unmet characteristic, when no variant of a module fits', () => {
    const gpuOnly = pkg([mod('b', 'any', { labels: { gpu: 'true' } })]);
    expect(picked(gpuOnly, node('x86_64'))).toBe('module bin: needs label gpu=true');
    expect(picked(pkg([mod('a', 'any', { os: ['windows'] })]), node('arm64'))).toBe('module bin: needs os windows, node has linux');
    expect(selectForNode([manifest, gpuOnly], node('x86_64'))).toEqual({ ok: false, unsupported: [{ package: 'p@1.0.0', reason: 'module bin: needs label gpu=true' }] });
    // Several builds, none fitting: the reason names what each would need.
    const builds = pkg([mod('a', 'any', { os: ['windows'] }), mod('b', 'any', { labels: { gpu: 'true' } }), mod('c', 'any', { labels: { gpu: 'false' } }), mod('d', 'arm64')]);
    expect(picked(builds, node('x86_64'))).toBe('module bin: needs os windows, node has linux; or needs label gpu=true; or needs label gpu=false');
  });

  it('keys equal traits equally and different characteristics differently', () => {
    expect(traitsKey(node('x86_64', { labels: { gpu: 'true', zone: 'a' } }))).toBe(traitsKey(node('x86_64', { labels: { zone: 'a', gpu: 'true' } })));
    expect(traitsKey(node('x86_64', { os: 'windows' }))).not.toBe(traitsKey(node('x86_64')));
    expect(traitsKey(node('x86_64', { labels: { gpu: 'true' } }))).not.toBe(traitsKey(node('x86_64')));
  });
});
