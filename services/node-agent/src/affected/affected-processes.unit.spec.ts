import { describe, expect, it } from '@jest/globals';
import { analyzeProposal, type PackageView, type RunningProcess } from './affected-processes.js';

const mod = (name: string, digest: string, dependsOn: string[] = []) => ({ name, digest, dependsOn });
const pkg = (name: string, version: string, modules: PackageView['modules'], api: { provides?: string[]; consumes?: string[] } = {}): PackageView => ({ name, version, modules, provides: api.provides ?? [], consumes: api.consumes ?? [] });
const proc = (module: string, ...packages: string[]): RunningProcess => ({ processId: `${module}@1`, module, packages });

describe('affected processes', () => {
  it('given a replaced module, when proposed, then its process and its transitive dependents are affected, others not', () => {
    const active = [pkg('core', '1.0.0', [mod('db', 'd1')]), pkg('app', '1.0.0', [mod('api', 'a1', ['db']), mod('web', 'w1', ['api'])]), pkg('tools', '1.0.0', [mod('cron', 'c1')])];
    const r = analyzeProposal(active, [pkg('core', '2.0.0', [mod('db', 'd2')])], [proc('db', 'core'), proc('api', 'app'), proc('web', 'app'), proc('cron', 'tools')]);
    expect(r.replacedModules).toEqual(['db']);
    expect(r.affected).toEqual([
      { processId: 'api@1', module: 'api', why: ['depends-on:db'] },
      { processId: 'db@1', module: 'db', why: ['replaced'] },
      { processId: 'web@1', module: 'web', why: ['depends-on:api'] },
    ]);
    expect(r.changes).toEqual([{ name: 'core', fromVersion: '1.0.0', toVersion: '2.0.0' }]);
  });

  it('given a dependency cycle, when one member is replaced, then every member is affected once and the walk ends', () => {
    const active = [pkg('ring', '1.0.0', [mod('a', 'a1', ['c']), mod('b', 'b1', ['a']), mod('c', 'c1', ['b'])])];
    const r = analyzeProposal(active, [pkg('ring', '1.1.0', [mod('a', 'a2', ['c']), mod('b', 'b1', ['a']), mod('c', 'c1', ['b'])])], [proc('a', 'ring'), proc('b', 'ring'), proc('c', 'ring')]);
    expect(r.affected.map((x) => x.module)).toEqual(['a', 'b', 'c']);
    expect(r.affected.find((x) => x.module === 'a')!.why).toEqual(['depends-on:c', 'replaced']);
    expect(r.changedModules.map((m) => m.name)).toEqual(['a']);
    expect(r.unchangedModules.map((m) => m.name)).toEqual(['b', 'c']);
  });

  it('given a module shared by two packages, when one package replaces it, then the processes of both packages that use it are affected', () => {
    const active = [pkg('p1', '1.0.0', [mod('shared', 's1'), mod('x', 'x1', ['shared'])]), pkg('p2', '1.0.0', [mod('shared', 's1'), mod('y', 'y1', ['shared'])])];
    const r = analyzeProposal(active, [pkg('p1', '2.0.0', [mod('shared', 's2'), mod('x', 'x1', ['shared'])])], [proc('shared', 'p1', 'p2'), proc('x', 'p1'), proc('y', 'p2')]);
    expect(r.affected.map((x) => `${x.module}:${x.why.join(',')}`)).toEqual(['shared:replaced', 'x:depends-on:shared', 'y:depends-on:shared']);
  });

  it('given a consumer, when its provider moves to an incompatible version, then it is affected and the problem is named; a compatible move is not', () => {
    const active = [pkg('billing', '1.0.0', [mod('bill', 'b1')], { provides: ['billing-api@1.4.0'] }), pkg('shop', '1.0.0', [mod('cart', 'c1')], { consumes: ['billing-api@^1.2'] })];
    const running = [proc('bill', 'billing'), proc('cart', 'shop')];
    const compatible = analyzeProposal(active, [pkg('billing', '1.1.0', [mod('bill', 'b2')], { provides: ['billing-api@1.5.0'] })], running);
    expect(compatible.apiProblems).toEqual([]);
    expect(compatible.affected.map((x) => x.module)).toEqual(['bill']);
    const breaking = analyzeProposal(active, [pkg('billing', '2.0.0', [mod('bill', 'b3')], { provides: ['billing-api@2.0.0'] })], running);
    expect(breaking.affected.find((x) => x.module === 'cart')!.why).toEqual(['consumes:billing-api@^1.2']);
    expect(breaking.apiProblems).toEqual([{ consumer: 'shop', api: 'billing-api@^1.2', message: 'shop consumes billing-api@^1.2; after the update the node provides billing 2.0.0' }]);
  });

  it('given a consumer updated together with its provider, when both move to matching versions, then there is no API problem', () => {
    const active = [pkg('billing', '1.0.0', [mod('bill', 'b1')], { provides: ['billing-api@1.4.0'] }), pkg('shop', '1.0.0', [mod('cart', 'c1')], { consumes: ['billing-api@^1'] })];
    const r = analyzeProposal(active, [pkg('billing', '2.0.0', [mod('bill', 'b2')], { provides: ['billing-api@2.0.0'] }), pkg('shop', '2.0.0', [mod('cart', 'c2')], { consumes: ['billing-api@^2'] })], [proc('bill', 'billing'), proc('cart', 'shop')]);
    expect(r.apiProblems).toEqual([]);
  });

  it('given an identical package, when proposed again, then nothing is replaced or affected', () => {
    const active = [pkg('core', '1.0.0', [mod('db', 'd1')])];
    const r = analyzeProposal(active, active, [proc('db', 'core')]);
    expect(r).toMatchObject({ replacedModules: [], affected: [], changedModules: [], changes: [] });
  });
});
