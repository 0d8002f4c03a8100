import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (this file is deploy/src/repo.ts, or deploy/dist/repo.js once built). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export const repoPath = (...parts: string[]): string => join(REPO_ROOT, ...parts);

export const readRepoFile = (...parts: string[]): string => readFileSync(repoPath(...parts), 'utf8');

/** Every workspace folder of the root package.json, with `dir/*` patterns expanded to folders that hold a package.json. */
export function workspaceDirs(): string[] {
  const root = JSON.parse(readRepoFile('package.json')) as { workspaces?: string[] };
  const dirs: string[] = [];
  for (const pattern of root.workspaces ?? []) {
    if (pattern.endsWith('/*')) {
      const parent = pattern.slice(0, -2);
      for (const entry of readdirSync(repoPath(parent), { withFileTypes: true })) {
        if (entry.isDirectory() && existsSync(repoPath(parent, entry.name, 'package.json'))) dirs.push(`${parent}/${entry.name}`);
      }
    } else {
      dirs.push(pattern);
    }
  }
  return dirs.sort();
}
