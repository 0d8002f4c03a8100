import { describe, expect, it } from '@jest/globals';
import { checkDependencies, unprovidedApis } from './dependency-check.js';
import { inventory, selected } from '../testing/fixtures.js';

describe('dependency check', () => {
  it('finds nothing when requirements, module dependencies and consumed APIs are satisfied', () => {
    const lib = selected('lib', { version: '2.1.0', provides: ['auth-api@1.4.0'] });
    const app = selected('app', { requires: { lib: '^2.0.0' }, consumes: ['auth-api@^1'], dependsOn: ['lib-bin'] });
    expect(checkDependencies([{ nodeId: 'n1', inventory: inventory([lib, app]), selected: [app] }])).toEqual([]);
  });
  it('names node, package and what is missing for each kind of discrepancy', () => {
    const app = selected('app', { requires: { lib: '^3' }, consumes: ['auth-api@^2'], dependsOn: ['codec'] });
    const provider = selected('auth', { provides: ['auth-api@1.0.0'] });
    const found = checkDependencies([
      { nodeId: 'n1', inventory: inventory([app, selected('lib', { version: '2.0.0' })]), selected: [app] },
      { nodeId: 'n2', inventory: inventory([provider]), selected: [provider] },
    ]);
    expect(found.map(({ kind, nodeId, package: p, missing }) => ({ kind, nodeId, p, missing }))).toEqual([
      { kind: 'PACKAGE_REQUIREMENT', nodeId: 'n1', p: 'app@1.0.0', missing: 'lib@^3' },
      { kind: 'API_UNPROVIDED', nodeId: 'n1', p: 'app@1.0.0', missing: 'auth-api@^2' },
      { kind: 'MODULE_DEPENDENCY', nodeId: 'n1', p: 'app@1.0.0', missing: 'codec' },
    ]);
  });
  it('an API provided on another node in scope satisfies a consumer (inter-node)', () => {
    const app = selected('app', { consumes: ['auth-api@^1'] });
    const provider = selected('auth', { provides: ['auth-api@1.2.0'] });
    expect(checkDependencies([{ nodeId: 'n1', inventory: inventory([app]), selected: [app] }, { nodeId: 'n2', inventory: inventory([provider]), selected: [provider] }])).toEqual([]);
  });
  it('an API a node outside the rollout provides satisfies a consumer only in a satisfying version', () => {
    const app = selected('app', { consumes: ['auth-api@^1', 'billing-api@^2'] });
    const nodes = [{ nodeId: 'n1', inventory: inventory([app]), selected: [app] }];
    expect(unprovidedApis(nodes)).toEqual(['auth-api@^1', 'billing-api@^2']);
    expect(checkDependencies(nodes, ['auth-api@1.3.0', 'billing-api@2.0.1'])).toEqual([]);
    expect(checkDependencies(nodes, ['auth-api@1.3.0', 'billing-api@1.9.0']).map((d) => d.missing)).toEqual(['billing-api@^2']);
  });
});
