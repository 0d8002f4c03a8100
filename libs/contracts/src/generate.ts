// Writes asyncapi.yaml and schemas/*.json from the catalog: `npm run generate -w @changeover/contracts`.
// With --check it writes nothing and exits 1 when a checked-in file differs (for CI).
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildArtifacts, GENERATED_HINT, SCHEMAS_DIR } from './catalog/artifacts.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const check = process.argv.includes('--check');
const { version } = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { version: string };
const files = buildArtifacts(version);

const existing = (await readdir(join(root, SCHEMAS_DIR)).catch(() => [] as string[])).filter((f) => f.endsWith('.json')).map((f) => `${SCHEMAS_DIR}/${f}`);
const stale = existing.filter((f) => !files.has(f));
const changed: string[] = [];
for (const [rel, content] of files) {
  const current = await readFile(join(root, rel), 'utf8').catch(() => undefined);
  if (current !== content) changed.push(rel);
}

if (check) {
  if (changed.length || stale.length) {
    console.error(`generated files are out of date (${[...changed, ...stale].join(', ')}): ${GENERATED_HINT}`);
    process.exit(1);
  }
  console.log(`${files.size} generated files are up to date`);
} else {
  await mkdir(join(root, SCHEMAS_DIR), { recursive: true });
  for (const rel of changed) await writeFile(join(root, rel), files.get(rel)!);
  for (const rel of stale) await rm(join(root, rel));
  console.log(`${files.size} files generated (${changed.length} changed, ${stale.length} removed)`);
}
