import { describe, expect, it } from '@jest/globals';
import type { Characteristics, NodeTraits } from '@changeover/contracts';
import { manifestOf, moduleOf, selectedOf } from '../testing/packages.js';
import { selectionVerdicts } from '../voting/selection-verdicts.js';
import { storedPackageFor } from './select-modules.js';
import { contractOs, contractProcessorType } from '../host-platform.js';

const node = (c: Partial<Characteristics> = {}): NodeTraits => ({ processorType: 'x86_64', characteristics: { arch: 'x86_64', os: 'linux', memoryMb: 1024, labels: {}, ...c } });

describe('the stored package of a commit', () => {
  const gpu = moduleOf('bin', '1.0.0', 'gpu', { requires: { labels: { gpu: 'true' } }, run: { command: 'gpu', args: [], env: {}, restartOnChange: false, stopTimeoutMs: 10_000 } });
  const plain = moduleOf('bin', '1.0.0', 'plain');
  const manifest = manifestOf('p', '1.0.0', [gpu, plain]);

  it('keeps the full modules (run specs) the selection picks for the node', () => {
    const r = storedPackageFor(manifest, undefined, node({ labels: { gpu: 'true' } }));
    expect(r.ok && r.pkg.modules).toEqual([gpu]);
  });

  it('shares one stored package between nodes of equal traits and not between nodes whose labels differ', () => {
    const a = storedPackageFor(manifest, undefined, node());
    const b = storedPackageFor(manifest, undefined, node());
    const c = storedPackageFor(manifest, undefined, node({ labels: { gpu: 'true' } }));
    expect(a).toBe(b);
    expect(a.ok && a.pkg.modules).toEqual([plain]);
    expect(c.ok && c.pkg.modules).toEqual([gpu]);
  });

  it('says why a package has no variant for the node', () => {
    const r = storedPackageFor(manifestOf('q', '1.0.0', [gpu]), undefined, node());
    expect(r).toEqual({ ok: false, reason: 'module bin: needs label gpu=true' });
  });
});

describe('the host as the contracts name it', () => {
  it('maps Node platform and arch names', () => {
    expect(contractOs('linux')).toBe('linux');
    expect(contractOs('win32')).toBe('windows');
    expect(contractOs('darwin')).toBe('darwin');
    expect(contractProcessorType('x64')).toBe('x86_64');
    expect(contractProcessorType('arm64')).toBe('arm64');
    expect(contractProcessorType('ia32')).toBeNull();
  });
});

describe('a proposal checked against the node’s own selection', () => {
  const gpu = moduleOf('bin', '1.0.0', 'gpu', { requires: { labels: { gpu: 'true' } } });
  const plain = moduleOf('bin', '1.0.0', 'plain');
  const manifest = manifestOf('p', '1.0.0', [gpu, plain]);
  const select = (labels: Record<string, string>) => (m: typeof manifest) => storedPackageFor(m, undefined, node({ labels }));
  const proposalOf = (mod: typeof gpu) => [{ ...selectedOf(manifest), modules: selectedOf(manifestOf('p', '1.0.0', [mod])).modules }];

  it('agrees when the proposal names the modules the node selects, and cannot check without the signed manifests', () => {
    expect(selectionVerdicts(proposalOf(plain), [{ manifest }], select({}))).toEqual([]);
    expect(selectionVerdicts(proposalOf(gpu), undefined, select({}))).toEqual([]);
  });

  it('vetoes PROCESSOR_UNSUPPORTED a selection made for other characteristics, or a package with no fitting variant', () => {
    expect(selectionVerdicts(proposalOf(gpu), [{ manifest }], select({}))).toEqual([expect.objectContaining({ decision: 'veto', reason: 'PROCESSOR_UNSUPPORTED', message: expect.stringContaining(`this node's characteristics select bin:${plain.digest}`) })]);
    const gpuOnly = manifestOf('p', '1.0.0', [gpu]);
    expect(selectionVerdicts([selectedOf(gpuOnly)], [{ manifest: gpuOnly }], select({}))).toEqual([expect.objectContaining({ reason: 'PROCESSOR_UNSUPPORTED', message: 'package p@1.0.0 is not supported on this node: module bin: needs label gpu=true' })]);
  });
});
