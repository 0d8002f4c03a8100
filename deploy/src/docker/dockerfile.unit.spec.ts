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

  it('copies every workspace manifest and the lockfile before npm ci, so the lockfile resolves', () => {
    const manifests = stage('manifests')!;
    const copied = manifests.instructions.filter((i) => i.keyword === 'COPY').flatMap((i) => i.args.split(/\s+/).slice(0, -1));
    expect(copied).toEqual(expect.arrayContaining(['package.json', 'package-lock.json']));
    for (const dir of workspaceDirs()) expect(copied).toContain(`${dir}/package.json`);
  });

  it("starts the chosen service's compiled entry, with OpenTelemetry preloaded", () => {
    const cmd = final.instructions.filter((i) => i.keyword === 'CMD').pop()!.args;
    expect(cmd).toContain('services/${CHANGEOVER_SERVICE}/dist/main.js');
    expect(cmd).toContain('--import @changeover/telemetry/otel');
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
    expect(readRepoFile('deploy/docker/healthcheck.mjs')).toContain('/health/live');
    const ports = JSON.parse(readRepoFile('deploy/docker/service-ports.json')) as Record<string, { variable: string; port: number }>;
    expect(ports).toEqual(Object.fromEntries(SERVICES.map((s) => [s.name, { variable: s.portVariable, port: s.port }])));
  });

  it('keeps node_modules and build output out of the build context, but not what the image copies', () => {
    const ignore = readRepoFile('.dockerignore').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
    expect(ignore).toEqual(expect.arrayContaining(['**/node_modules', '**/dist']));
    expect(ignore).toContain('!deploy/docker');
    expect(ignore).toContain('!deploy/package.json');
  });
});
