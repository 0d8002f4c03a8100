import { describe, expect, it } from '@jest/globals';
import { readFile, readdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { Parser } from '@asyncapi/parser';
import { AGENT_REPORTS, EVENT_TYPES, NODE_COMMANDS, ROLLOUT_RPC, eventSubject, parseSubject, subjects } from '../index.js';
import { buildArtifacts, GENERATED_HINT } from './artifacts.js';
import { CATALOG, catalogMessages } from './catalog.js';

const root = fileURLToPath(new URL('../../', import.meta.url));

describe('generated documents', () => {
  it('match the catalog (no drift)', async () => {
    const files = buildArtifacts(JSON.parse(await readFile(`${root}package.json`, 'utf8')).version);
    const onDisk = (await readdir(`${root}schemas`)).map((f) => `schemas/${f}`).concat('asyncapi.yaml').sort();
    const stale = onDisk.filter((f) => !files.has(f));
    const drifted: string[] = [];
    for (const [rel, content] of files) {
      if ((await readFile(`${root}${rel}`, 'utf8').catch(() => '')) !== content) drifted.push(rel);
    }
    if (drifted.length || stale.length) throw new Error(`generated files differ from the catalog (${[...drifted, ...stale].slice(0, 5).join(', ')}…): ${GENERATED_HINT}`);
    expect(files.size).toBe(catalogMessages().length + 2);
  });

  it('asyncapi.yaml is a valid AsyncAPI 3.0.0 document', async () => {
    const text = await readFile(`${root}asyncapi.yaml`, 'utf8');
    const diagnostics = await new Parser().validate(text);
    const errors = diagnostics.filter((d) => d.severity === 0).map((d) => `${d.path.join('.')}: ${d.message}`);
    expect(errors).toEqual([]);
    expect(text).toMatch(/^asyncapi: 3\.0\.0$/m);
  }, 60_000);
});

describe('catalog', () => {
  const sample: Record<string, string> = { nodeId: 'node-1', classId: 'web', groupId: 'g-1' };
  const concrete = (address: string) => address.replace(/\{(\w+)\}/g, (_m, p: string) => sample[p]!);

  it('lists every node command, class command, agent report, rollout op and event type exactly once', () => {
    const ids = CATALOG.map((c) => c.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const cmd of NODE_COMMANDS) expect(ids).toEqual(expect.arrayContaining([`node.${cmd}`, `class.${cmd}`]));
    for (const r of AGENT_REPORTS) expect(ids).toContain(`agent.${r}`);
    for (const op of Object.keys(ROLLOUT_RPC)) expect(ids).toContain(`rollout.${op}`);
    for (const t of EVENT_TYPES) expect(ids).toContain(`event.${t}`);
    expect(ids).toContain('group.membership');
  });

  it.each(CATALOG.map((c) => [c.id, c] as const))('%s: its address is what the subject builders produce', (_id, c) => {
    const s = concrete(c.address);
    const parsed = parseSubject(s);
    switch (parsed.kind) {
      case 'node':
        return expect(s).toBe(subjects.node(parsed.nodeId, parsed.command));
      case 'class':
        return expect(s).toBe(subjects.class(parsed.classId, parsed.command));
      case 'agent':
        return expect(s).toBe(subjects.agent(parsed.nodeId, parsed.report));
      case 'agent-request':
        return expect(s).toBe(subjects.agentRequest(parsed.nodeId, parsed.op));
      case 'registry':
        return expect(s).toBe(subjects.registry(parsed.op));
      case 'rollout':
        return expect(s).toBe(subjects.rollout(parsed.op));
      case 'event':
        return expect(s).toBe(eventSubject(c.id.slice('event.'.length)));
      case 'group':
        return expect(s).toBe(subjects.groupMembership(parsed.groupId));
    }
  });

  it('gives distinct schemas distinct message names', () => {
    const byName = new Map<string, unknown>();
    for (const c of CATALOG) for (const m of c.reply ? [c.message, c.reply] : [c.message]) {
      if (byName.has(m.name)) expect(byName.get(m.name)).toBe(m.schema);
      byName.set(m.name, m.schema);
    }
  });
});
