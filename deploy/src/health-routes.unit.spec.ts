import { describe, expect, it } from '@jest/globals';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoPath } from './repo.js';
import { SERVICES } from './services.js';

/** Every string literal in a service's non-test sources: route decorators and path comparisons are among them. */
function stringLiterals(dir: string): Set<string> {
  const out = new Set<string>();
  const walk = (d: string) => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const path = join(d, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.ts') && !entry.name.includes('.spec.')) {
        for (const m of readFileSync(path, 'utf8').matchAll(/'([^'\n]*)'|"([^"\n]*)"|`([^`$\n]*)`/g)) out.add(m[1] ?? m[2] ?? m[3]!);
      }
    }
  };
  walk(repoPath(dir, 'src'));
  return out;
}

describe('health and metrics paths the deployment probes', () => {
  it.each(SERVICES.map((s) => [s.name, s] as const))('are routes %s declares', (_name, svc) => {
    const literals = stringLiterals(svc.dir);
    // A Nest route is declared without its leading slash (@Get('health')); a plain server compares req.url ('/live').
    const declared = (path: string) => literals.has(path) || literals.has(path.slice(1));
    expect({ live: declared(svc.live), ready: declared(svc.ready), metrics: declared(svc.metrics) }).toEqual({ live: true, ready: true, metrics: true });
  });
});
