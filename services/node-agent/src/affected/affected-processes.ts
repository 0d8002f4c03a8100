import semver from 'semver';

// Which running processes an update touches (claim 1): pure, so it is tested on small graphs.

export interface ModuleView {
  name: string;
  digest: string;
  dependsOn: readonly string[];
  size?: number;
}

export interface PackageView {
  name: string;
  version: string;
  modules: readonly ModuleView[];
  provides: readonly string[];
  consumes: readonly string[];
}

export interface RunningProcess {
  processId: string;
  module: string;
  /** Packages whose module this process runs (a shared module belongs to several). */
  packages: readonly string[];
}

export interface AffectedProcess {
  processId: string;
  module: string;
  /** `replaced`, `depends-on:<module>`, `consumes:<api>`. */
  why: string[];
}

export interface ApiProblem {
  consumer: string;
  api: string;
  message: string;
}

export interface ProposalAnalysis {
  changes: { name: string; fromVersion: string | null; toVersion: string | null }[];
  /** Modules whose binary differs or that leave the node. */
  replacedModules: string[];
  /** Modules whose digest the node does not run yet. */
  changedModules: ModuleView[];
  unchangedModules: ModuleView[];
  affected: AffectedProcess[];
  /** Running consumers whose API would disappear or become incompatible: the agent vetoes on these. */
  apiProblems: ApiProblem[];
}

function parseApi(spec: string): { name: string; rest: string } | null {
  const at = spec.lastIndexOf('@');
  return at > 0 ? { name: spec.slice(0, at), rest: spec.slice(at + 1) } : null;
}

function providersOf(set: readonly PackageView[]): Map<string, { pkg: string; version: string }[]> {
  const out = new Map<string, { pkg: string; version: string }[]>();
  for (const p of set) {
    for (const spec of p.provides) {
      const api = parseApi(spec);
      if (!api) continue;
      const list = out.get(api.name) ?? [];
      list.push({ pkg: p.name, version: api.rest });
      out.set(api.name, list);
    }
  }
  return out;
}

function satisfied(providers: Map<string, { version: string }[]>, api: string, range: string): boolean {
  return (providers.get(api) ?? []).some((p) => semver.valid(p.version) !== null && semver.satisfies(p.version, range, { includePrerelease: true }));
}

function moduleDigests(set: readonly PackageView[]): Map<string, ModuleView> {
  const out = new Map<string, ModuleView>();
  for (const p of set) for (const m of p.modules) out.set(m.name, m);
  return out;
}

/** Compares the active set with the set after the proposal and finds the running processes it touches. */
export function analyzeProposal(active: readonly PackageView[], proposed: readonly PackageView[], running: readonly RunningProcess[]): ProposalAnalysis {
  const proposedNames = new Set(proposed.map((p) => p.name));
  return analyzeChange(active, [...active.filter((p) => !proposedNames.has(p.name)), ...proposed], running);
}

/** Compares two whole sets (a commit, or a regression to an older set). */
export function analyzeChange(active: readonly PackageView[], after: readonly PackageView[], running: readonly RunningProcess[]): ProposalAnalysis {
  const before = moduleDigests(active);
  const now = moduleDigests(after);

  const beforeVersion = new Map(active.map((p) => [p.name, p.version]));
  const afterVersion = new Map(after.map((p) => [p.name, p.version]));
  const changes = [...new Set([...beforeVersion.keys(), ...afterVersion.keys()])]
    .map((name) => ({ name, fromVersion: beforeVersion.get(name) ?? null, toVersion: afterVersion.get(name) ?? null }))
    .filter((c) => c.fromVersion !== c.toVersion)
    .sort((a, b) => (a.name < b.name ? -1 : 1));

  const replaced = new Set<string>();
  for (const [name, m] of before) if (now.get(name)?.digest !== m.digest) replaced.add(name);
  const changedModules: ModuleView[] = [];
  const unchangedModules: ModuleView[] = [];
  for (const p of after) {
    const untouched = beforeVersion.get(p.name) === p.version;
    for (const m of p.modules) {
      if (before.get(m.name)?.digest !== m.digest) changedModules.push(m);
      else if (!untouched) unchangedModules.push(m);
    }
  }

  // Reverse dependsOn edges over both sets: a dependent of a replaced module is touched, transitively.
  const dependents = new Map<string, Set<string>>();
  for (const set of [active, after]) {
    for (const p of set) {
      for (const m of p.modules) {
        for (const dep of m.dependsOn) {
          const s = dependents.get(dep) ?? new Set<string>();
          s.add(m.name);
          dependents.set(dep, s);
        }
      }
    }
  }
  const why = new Map<string, Set<string>>();
  const note = (module: string, reason: string) => {
    const s = why.get(module) ?? new Set<string>();
    s.add(reason);
    why.set(module, s);
  };
  for (const r of replaced) note(r, 'replaced');
  const queue = [...replaced];
  const seen = new Set(queue);
  while (queue.length) {
    const cur = queue.shift()!;
    for (const d of dependents.get(cur) ?? []) {
      note(d, `depends-on:${cur}`);
      if (!seen.has(d)) {
        seen.add(d);
        queue.push(d);
      }
    }
  }

  // A consumer is touched when its provider changes to a version outside its range.
  const oldProviders = providersOf(active);
  const newProviders = providersOf(after);
  const apiProblems: ApiProblem[] = [];
  const consumerPackages = new Map<string, string[]>();
  for (const p of after) {
    for (const spec of p.consumes) {
      const api = parseApi(spec);
      if (!api) continue;
      if (satisfied(oldProviders, api.name, api.rest) && !satisfied(newProviders, api.name, api.rest)) {
        const offered = (newProviders.get(api.name) ?? []).map((x) => `${x.pkg} ${x.version}`).join(', ') || 'none';
        apiProblems.push({ consumer: p.name, api: spec, message: `${p.name} consumes ${spec}; after the update the node provides ${offered}` });
        consumerPackages.set(p.name, [...(consumerPackages.get(p.name) ?? []), spec]);
      }
    }
  }

  const affected: AffectedProcess[] = [];
  for (const proc of running) {
    const reasons = new Set(why.get(proc.module) ?? []);
    for (const pkg of proc.packages) for (const spec of consumerPackages.get(pkg) ?? []) reasons.add(`consumes:${spec}`);
    if (reasons.size) affected.push({ processId: proc.processId, module: proc.module, why: [...reasons].sort() });
  }
  affected.sort((a, b) => (a.processId < b.processId ? -1 : 1));
  return { changes, replacedModules: [...replaced].sort(), changedModules, unchangedModules, affected, apiProblems };
}
