import { describe, expect, it } from '@jest/globals';
import { emptyState, keepVersions, packageKey, type NodeState, type StoredPackage } from '../model/state.js';
import { manifestOf, moduleOf } from '../testing/packages.js';
import { referencedDigests, retainedState, unreferencedBlobs } from './retention.js';

const shared = moduleOf('web-assets', '1.0.0', 'shared assets');
const pkg = (name: string, version: string, extra = [shared]): StoredPackage => {
  const m = manifestOf(name, version, [moduleOf(`${name}-svc`, version, `${name} ${version}`), ...extra]);
  return { manifest: m, modules: m.modules };
};
const keys = (ps: StoredPackage[]) => ps.map(packageKey);

/** The state after installing these versions of `web` one after the other, as runChangeover keeps them. */
function installed(versions: string[], other: StoredPackage[] = []): NodeState {
  let s: NodeState = { ...emptyState(), active: [...other] };
  for (const v of versions) {
    const target = [...s.active.filter((p) => p.manifest.name !== 'web'), pkg('web', v)];
    s = { ...s, active: target, previous: s.active, kept: keepVersions(s.kept, [...s.previous, ...s.active], [...target, ...s.active]) };
  }
  return s;
}

describe('retention of package versions', () => {
  it('keeps the active version and the previous set by default, dropping older kept versions', () => {
    const s = installed(['1.0.0', '1.1.0', '1.2.0', '1.3.0']);
    expect(keys(s.kept)).toEqual(['web@1.0.0', 'web@1.1.0']);
    const r = retainedState(s, 1);
    expect(keys(r.state.active)).toEqual(['web@1.3.0']);
    expect(keys(r.state.previous)).toEqual(['web@1.2.0']);
    expect(r.state.kept).toEqual([]);
    expect(keys(r.dropped)).toEqual(['web@1.0.0', 'web@1.1.0']);
  });

  it('keeps the N most recently replaced versions of each package', () => {
    const s = installed(['1.0.0', '1.1.0', '1.2.0', '1.3.0', '1.4.0']);
    const r = retainedState(s, 3);
    expect(keys(r.state.kept)).toEqual(['web@1.1.0', 'web@1.2.0']);
    expect(keys(r.dropped)).toEqual(['web@1.0.0']);
    expect(retainedState(s, 16).dropped).toEqual([]);
  });

  it('counts per package: another package keeps its own previous version', () => {
    let s = installed(['1.0.0', '1.1.0'], [pkg('db', '2.0.0')]);
    const db21 = pkg('db', '2.1.0');
    const target = [...s.active.filter((p) => p.manifest.name !== 'db'), db21];
    s = { ...s, active: target, previous: s.active, kept: keepVersions(s.kept, [...s.previous, ...s.active], [...target, ...s.active]) };
    // The previous set holds web at its active version: web's previous version (1.0.0) is a kept one and stays.
    const r = retainedState(s, 1);
    expect(keys(r.state.previous).sort()).toEqual(['db@2.0.0', 'web@1.1.0']);
    expect(keys(r.state.kept)).toEqual(['web@1.0.0']);
    expect(r.dropped).toEqual([]);
    // Next web 1.2.0: web's previous version is now the previous set's (1.1.0), so 1.0.0 goes; db keeps 2.0.0.
    const s2: NodeState = { ...emptyState(), active: [db21, pkg('web', '1.2.0')], previous: [db21, pkg('web', '1.1.0')], kept: [pkg('db', '2.0.0'), pkg('web', '1.0.0')] };
    expect(keys(retainedState(s2, 1).state.kept)).toEqual(['db@2.0.0']);
    expect(keys(retainedState(s2, 1).dropped)).toEqual(['web@1.0.0']);
  });

  it('never drops what a changeover in progress holds', () => {
    const s = installed(['1.0.0', '1.1.0', '1.2.0']);
    const old = s.kept.find((p) => p.manifest.version === '1.0.0')!;
    const inProgress: NodeState = { ...s, journal: { rolloutId: 'r', attempt: 0, kind: 'regress', step: 'prepared', from: { active: s.active, previous: s.previous }, to: [old] } };
    expect(retainedState(inProgress, 1).dropped).toEqual([]);
    expect(referencedDigests(inProgress).has(old.modules[0]!.digest)).toBe(true);
  });

  it('returns the same state when nothing goes', () => {
    const s = installed(['1.0.0', '1.1.0']);
    expect(retainedState(s, 1).state).toBe(s);
  });

  it('references the modules of every kept version, a blob shared by versions once', () => {
    const r = retainedState(installed(['1.0.0', '1.1.0', '1.2.0']), 1);
    const digests = referencedDigests(r.state);
    expect(digests.size).toBe(3);
    expect(digests.has(shared.digest)).toBe(true);
    expect(digests.has(pkg('web', '1.0.0').modules[0]!.digest)).toBe(false);
  });
});

describe('unreferenced module files', () => {
  const hex = (c: string) => c.repeat(64);
  it('lists only sha256-named files no digest in use names', () => {
    const files = [hex('a'), hex('b'), hex('c'), `.${hex('d')}.123.ab.tmp`, 'README', hex('A')];
    expect(unreferencedBlobs(files, [`sha256:${hex('a')}`, hex('c')])).toEqual([hex('b')]);
    expect(unreferencedBlobs(files, [])).toEqual([hex('a'), hex('b'), hex('c')]);
  });
});
