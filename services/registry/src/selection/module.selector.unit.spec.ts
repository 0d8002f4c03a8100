import { describe, expect, it } from '@jest/globals';
import type { Characteristics, Module, PackageManifest } from '@changeover/contracts';
import { buildAssignments, type SelectableNode } from './assignments.js';
import { selectForNode, selectPackage, unmetRequirement } from './module.selector.js';

const digest = (c: string) => `sha256:${c.repeat(64).slice(0, 64)}`;
const mod = (name: string, processorType: Module['processorType'], d: string, requires: Module['requires'] = {}): Module => ({ name, version: '1.0.0', processorType, size: 1, digest: digest(d), dependsOn: [], requires });
const pkg = (name: string, modules: Module[]): PackageManifest => ({ name, version: '1.0.0', description: '', modules, requires: {}, provides: [], consumes: [] });
const traits = (arch: 'x86_64' | 'arm64', c: Partial<Characteristics> = {}): SelectableNode => ({
  nodeId: `${arch}-${c.memoryMb ?? 0}`,
  classId: 'c',
  processorType: arch,
  characteristics: { arch, os: 'linux', memoryMb: 2048, labels: {}, ...c },
});

describe('requirements', () => {
  const node = traits('x86_64', { memoryMb: 2048, diskMb: 100, labels: { gpu: 'yes' } }).characteristics;
  it('holds when every characteristic is met', () => {
    expect(unmetRequirement({ os: ['linux'], minMemoryMb: 2048, minDiskMb: 100, labels: { gpu: 'yes' } }, node)).toBeNull();
  });
  it('names the first unmet characteristic', () => {
    expect(unmetRequirement({ os: ['windows'] }, node)).toMatch(/os windows/);
    expect(unmetRequirement({ minMemoryMb: 4096 }, node)).toMatch(/4096 MB memory/);
    expect(unmetRequirement({ minDiskMb: 101 }, node)).toMatch(/disk/);
    expect(unmetRequirement({ labels: { gpu: 'no' } }, node)).toMatch(/gpu=no/);
  });
});

describe('selectPackage', () => {
  const billing = pkg('billing', [mod('server', 'x86_64', 'a'), mod('server', 'arm64', 'b'), mod('server', 'any', 'c'), mod('conf', 'any', 'd')]);

  it('prefers the exact processor type over any, one variant per module name', () => {
    const r = selectPackage(billing, traits('arm64'));
    expect(r.ok && r.selected.modules.map((m) => [m.name, m.processorType])).toEqual([
      ['server', 'arm64'],
      ['conf', 'any'],
    ]);
  });

  it('falls back to an any variant when the exact one does not fit the characteristics', () => {
    const p = pkg('p', [mod('m', 'x86_64', 'a', { minMemoryMb: 8192 }), mod('m', 'any', 'b')]);
    const r = selectPackage(p, traits('x86_64'));
    expect(r.ok && r.selected.modules[0]!.processorType).toBe('any');
  });

  it('reports a module with no variant for the processor type', () => {
    const r = selectPackage(pkg('p', [mod('m', 'x86_64', 'a')]), traits('arm64'));
    expect(r).toEqual({ ok: false, reason: 'no module m for processor type arm64 (has x86_64)' });
  });

  it('gives equal selections equal ids and different ones different ids', () => {
    const a = selectForNode([billing], traits('x86_64', { memoryMb: 1 }));
    const b = selectForNode([billing], traits('x86_64', { memoryMb: 2 }));
    const c = selectForNode([billing], traits('arm64'));
    expect(a.ok && b.ok && a.selectionId === b.selectionId).toBe(true);
    expect(a.ok && c.ok && a.selectionId !== c.selectionId).toBe(true);
    expect(a.ok && a.selectionId).toMatch(/^sha256:[a-f0-9]{64}$/);
  });
});

describe('buildAssignments', () => {
  const manifests = [pkg('billing', [mod('server', 'x86_64', 'a'), mod('server', 'arm64', 'b')])];
  const node = (id: string, arch: 'x86_64' | 'arm64', classId = 'web'): SelectableNode => ({ ...traits(arch), nodeId: id, classId });

  it('makes one class assignment when every node of the class gets the same selection', () => {
    const r = buildAssignments({ manifests, classes: new Map([['web', [node('a', 'x86_64'), node('b', 'x86_64')]]]), nodes: [], unknownNodes: [] });
    expect(r.assignments).toHaveLength(1);
    expect(r.assignments[0]).toMatchObject({ classId: 'web', nodes: ['a', 'b'] });
  });

  it('splits a mixed class into groups by selection and does not repeat listed nodes', () => {
    const r = buildAssignments({ manifests, classes: new Map([['web', [node('a', 'x86_64'), node('b', 'arm64')]]]), nodes: [node('a', 'x86_64'), node('c', 'x86_64', 'db')], unknownNodes: ['z'] });
    expect(r.assignments.map((a) => [a.classId, a.nodes])).toEqual([
      [undefined, ['a', 'c']],
      [undefined, ['b']],
    ]);
    expect(r.unknownNodes).toEqual(['z']);
  });

  it('leaves nodes with an unsupported package out of every assignment', () => {
    const only = [pkg('x', [mod('m', 'x86_64', 'a')])];
    const r = buildAssignments({ manifests: only, classes: new Map([['web', [node('a', 'x86_64'), node('b', 'arm64')]]]), nodes: [], unknownNodes: [] });
    expect(r.assignments.map((a) => a.nodes)).toEqual([['a']]);
    expect(r.unsupported).toEqual([{ nodeId: 'b', package: 'x@1.0.0', processorType: 'arm64', reason: expect.stringContaining('arm64') }]);
  });

  it('resolves thousands of nodes by computing each distinct selection once', () => {
    const many = Array.from({ length: 5000 }, (_, i) => node(`n${i}`, i % 2 ? 'arm64' : 'x86_64'));
    const r = buildAssignments({ manifests, classes: new Map(), nodes: many, unknownNodes: [] });
    expect(r.assignments.map((a) => a.nodes.length)).toEqual([2500, 2500]);
  });
});
