import { describe, expect, it } from '@jest/globals';
import { existsSync } from 'node:fs';
import { readRepoFile, repoPath, workspaceDirs } from '../repo.js';
import { SERVICES } from '../services.js';
import { parseDockerfile, stagesUsedBy, type Stage } from './dockerfile.parse.js';

const file = parseDockerfile(readRepoFile('Dockerfile'));
const final = file.stages[file.stages.length - 1]!;
const runs = (s: Stage) => s.instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args);
const stage = (name: string) => file.stages.find((s) => s.name === name);
const used = stagesUsedBy(file, final);

/** COPY instructions of every stage the final image is built from. */
const stagesUsedByCopies = () =>
  file.stages.filter((s) => used.has(s.name ?? '')).flatMap((s) => s.instructions.filter((i) => i.keyword === 'COPY').map((i) => i.args)).join('\n');

describe('Dockerfile', () => {
  it('is multi-stage and ends on a small Node 20 runtime image', () => {
    expect(file.stages.length).toBeGreaterThanOrEqual(3);
    expect(final.from).toMatch(/^node:20(\.[\d.]+)?-(bookworm-slim|bullseye-slim|slim|alpine[\d.]*)$/);
  });

  it('runs as a non-root user', () => {
    const users = final.instructions.filter((i) => i.keyword === 'USER').map((i) => i.args.split(':')[0]);
    expect(users.length).toBeGreaterThan(0);
    expect(['root', '0']).not.toContain(users[users.length - 1]);
  });

  it('compiles every service with npm ci and the TypeScript build, outside the runtime stage', () => {
    const builders = file.stages.filter((s) => runs(s).some((r) => /\bnpm ci\b/.test(r) && !/--omit=dev/.test(r)));
    expect(builders.length).toBe(1);
    const build = builders[0]!;
    expect(used.has(build.name!)).toBe(true);
    const compile = runs(build).find((r) => /\btsc -b\b|\bnpm run build\b/.test(r));
    expect(compile).toBeDefined();
    if (!/npm run build/.test(compile!)) for (const svc of SERVICES) expect(compile!.split(/\s+/)).toContain(svc.dir);
    expect(runs(final).join('\n')).not.toMatch(/\bnpm ci\b|\btsc\b|npm install/);
  });

  it('takes production dependencies only into the runtime image', () => {
    const prod = file.stages.filter((s) => runs(s).some((r) => /npm (ci|prune)\b.*--omit=dev/.test(r)));
    expect(prod.length).toBe(1);
    expect(used.has(prod[0]!.name!)).toBe(true);
  });

  it('installs from the lockfile and every workspace manifest, extracted from the whole source tree', () => {
    const sources = stage('sources')!;
    expect(sources.instructions.some((i) => i.keyword === 'COPY' && i.args === '. .')).toBe(true);
    const extract = runs(sources).join('\n');
    expect(extract).toMatch(/cp package\.json package-lock\.json .*\/manifests\//);
    expect(extract).toMatch(/find \. .*-name package\.json/);
    // Workspace folders are one or two levels deep (cli, libs/contracts): the find's -maxdepth must reach them.
    const depth = Number(/-maxdepth (\d+)/.exec(extract)?.[1] ?? Infinity);
    for (const dir of workspaceDirs()) expect(dir.split('/').length + 1).toBeLessThanOrEqual(depth);
    expect(stage('manifests')!.instructions.find((i) => i.keyword === 'COPY')?.args).toBe('--from=sources /manifests/ ./');
    expect(used.has('manifests')).toBe(true);
  });

  it("starts the chosen service's compiled entry, with OpenTelemetry preloaded", () => {
    const cmd = final.instructions.filter((i) => i.keyword === 'CMD').pop()!.args;
    expect(JSON.parse(cmd)).toEqual(['sh', 'deploy/docker/start.sh']);
    const start = readRepoFile('deploy/docker/start.sh');
    expect(start).toContain('"services/${CHANGEOVER_SERVICE}/dist/main.js"');
    expect(start).toContain('--import @changeover/telemetry/otel');
    expect(final.instructions.some((i) => i.keyword === 'ENV' && /CHANGEOVER_SERVICE=\$\{SERVICE\}/.test(i.args))).toBe(true);
    expect(runs(final).join('\n')).toContain('test -f "services/${SERVICE}/dist/main.js"');
    for (const svc of SERVICES) {
      expect(existsSync(repoPath(svc.dir, 'package.json'))).toBe(true);
      const tsconfig = JSON.parse(readRepoFile(svc.dir, 'tsconfig.json')) as { compilerOptions: { rootDir: string; outDir: string } };
      expect(tsconfig.compilerOptions).toMatchObject({ rootDir: 'src', outDir: 'dist' });
    }
  });

  it('has a HEALTHCHECK that probes each service on its own port', () => {
    const hc = final.instructions.find((i) => i.keyword === 'HEALTHCHECK');
    expect(hc?.args).toContain('deploy/docker/healthcheck.mjs');
    expect(readRepoFile('deploy/docker/healthcheck.mjs')).toContain("new URL('./processes.json', import.meta.url)");
    const copied = final.instructions.filter((i) => i.keyword === 'COPY').map((i) => i.args).join('\n');
    expect(copied + stagesUsedByCopies()).toContain('deploy/docker/');
  });

  it('keeps node_modules and build output out of the build context, but not what the image copies', () => {
    const ignore = readRepoFile('.dockerignore').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
    expect(ignore).toEqual(expect.arrayContaining(['**/node_modules', '**/dist']));
    expect(ignore).toContain('!deploy/docker');
    expect(ignore).toContain('!deploy/package.json');
  });
});
