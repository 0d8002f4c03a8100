import { generateKeyPairSync } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { decode, encode, ProgressReport, selectPackage, signManifest, subjects, VoteReport, type HelloReport } from '@changeover/contracts';
import { startNats, waitFor, type TestNats } from '@changeover/test-kit';
import { createLog } from '../log.js';
import { CounterRegistry } from '../metrics.js';
import { manifestOf, moduleOf, selectedOf } from '../testing/packages.js';
import type { NatsFleet } from '../transport/nats-fleet.js';
import { signatureVerifier } from '../trust/signatures.js';
import { startSimFleet } from './sim-fleet.js';

describe('simulated fleet over NATS', () => {
  let nats: TestNats;
  let nc: NatsConnection;
  const fleets: NatsFleet[] = [];
  const counters = new CounterRegistry();
  const votes = new Map<string, VoteReport[]>();
  const progress = new Map<string, ProgressReport[]>();
  const hellos = new Set<string>();
  const helloOf = new Map<string, HelloReport>();

  const web = manifestOf('web', '1.0.0', [moduleOf('web-bin', '1.0.0', 'web v1'), moduleOf('web-conf', '1.0.0', 'conf')]);
  const web2 = manifestOf('web', '2.0.0', [moduleOf('web-bin', '2.0.0', 'web v2'), moduleOf('web-conf', '1.0.0', 'conf')]);
  const armOnly = manifestOf('armtool', '1.0.0', [moduleOf('armtool', '1.0.0', 'arm', { processorType: 'arm64' })]);

  const fleet = (classId: string, count: number, rates: { vetoRate?: number; slowRate?: number; armRatio?: number; labelled?: { share: number; labels: Record<string, string> } } = {}, verifySignature?: ReturnType<typeof signatureVerifier>) =>
    startSimFleet(nc, {
      count,
      classId,
      prefix: classId,
      vetoRate: rates.vetoRate ?? 0,
      slowRate: rates.slowRate ?? 0,
      failRate: 0,
      armRatio: rates.armRatio ?? 0,
      ...(rates.labelled ? { labelled: rates.labelled } : {}),
      agentVersion: '1.0.0',
      clusterVersions: { min: 1, max: 2 },
      heartbeatMs: 60_000,
      counters,
      log: createLog('silent'),
      ...(verifySignature ? { verifySignature } : {}),
    }).then((f) => (fleets.push(f), f));

  const votesOf = (rolloutId: string) => votes.get(rolloutId) ?? [];
  const progressOf = (rolloutId: string, phase: string) => (progress.get(rolloutId) ?? []).filter((p) => p.phase === phase);

  beforeAll(async () => {
    nats = await startNats();
    nc = await connect({ servers: nats.url });
    nc.subscribe('changeover.agent.*.vote', { callback: (_e, m) => { const v = decode(VoteReport, m.data); votes.set(v.rolloutId, [...votesOf(v.rolloutId), v]); } });
    nc.subscribe('changeover.agent.*.progress', { callback: (_e, m) => { const p = decode(ProgressReport, m.data); progress.set(p.rolloutId, [...(progress.get(p.rolloutId) ?? []), p]); } });
    nc.subscribe('changeover.agent.*.hello', { callback: (_e, m) => { const h = JSON.parse(new TextDecoder().decode(m.data)) as HelloReport; hellos.add(h.nodeId); helloOf.set(h.nodeId, h); } });
    await nc.flush();
  });

  afterAll(async () => {
    for (const f of fleets) await f.stop();
    await nc.close();
    await nats.stop();
  });

  it('says hello from every node, votes on a class proposal, answers a repeat from its record, and installs on commit', async () => {
    await fleet('web', 200);
    await waitFor('200 hellos', () => [...hellos].filter((h) => h.startsWith('web-')).length === 200);

    nc.publish(subjects.class('web', 'propose'), encode({ rolloutId: 'r1', attempt: 0, classId: 'web', packages: [selectedOf(web)], voteTimeoutMs: 5000 }));
    await waitFor('200 votes', () => votesOf('r1').length === 200);
    expect(votesOf('r1').every((v) => v.decision === 'accept')).toBe(true);
    expect(votesOf('r1')[0]!.affectedProcesses).toEqual(['sim-app']);

    const first = votesOf('r1').find((v) => v.nodeId === 'web-7');
    nc.publish(subjects.node('web-7', 'propose'), encode({ rolloutId: 'r1', attempt: 0, nodeId: 'web-7', packages: [selectedOf(web)], voteTimeoutMs: 5000 }));
    await waitFor('the repeated vote', () => votesOf('r1').length === 201);
    expect(votesOf('r1')[200]).toEqual(first);

    nc.publish(subjects.class('web', 'commit'), encode({ rolloutId: 'r1', attempt: 0, classId: 'web', packages: [{ manifest: web }], changeoverTimeoutMs: 10_000 }));
    await waitFor('200 completions', () => progressOf('r1', 'completed').length === 200);
    const done = progressOf('r1', 'completed')[0]!;
    expect(done.inventory?.active.map((p) => `${p.name}@${p.version}`)).toEqual(['web@1.0.0']);
    expect(done.modulesFetched).toBe(2);
  });

  it('paces its hellos when given a report rate, and every node still says hello once', async () => {
    const seen: string[] = [];
    const sub = nc.subscribe('changeover.agent.*.hello', { callback: (_e, m) => {
      const id = m.subject.split('.')[2]!;
      if (id.startsWith('paced-')) seen.push(id);
    } });
    await nc.flush();
    await startSimFleet(nc, { count: 60, classId: 'paced', prefix: 'paced', vetoRate: 0, slowRate: 0, failRate: 0, armRatio: 0, agentVersion: '1.0.0', clusterVersions: { min: 1, max: 2 }, heartbeatMs: 60_000, counters, log: createLog('silent'), reportsPerSecond: 200 }).then((f) => fleets.push(f));
    await waitFor('60 paced hellos', () => seen.length >= 60);
    sub.unsubscribe();
    expect(new Set(seen).size).toBe(60);
  });

  it('fetches only the changed module on an update and answers a duplicate commit from its record', async () => {
    nc.publish(subjects.class('web', 'propose'), encode({ rolloutId: 'r2', attempt: 0, classId: 'web', packages: [selectedOf(web2)], voteTimeoutMs: 5000 }));
    await waitFor('200 votes', () => votesOf('r2').length === 200);
    const v = votesOf('r2')[0]!;
    expect(v.affectedProcesses).toEqual(['web-bin@1.0.0', 'sim-app']);
    nc.publish(subjects.class('web', 'commit'), encode({ rolloutId: 'r2', attempt: 0, classId: 'web', packages: [{ manifest: web2 }], changeoverTimeoutMs: 10_000 }));
    await waitFor('200 completions', () => progressOf('r2', 'completed').length === 200);
    const done = progressOf('r2', 'completed')[0]!;
    expect(done).toMatchObject({ modulesFetched: 1, modulesUnchanged: 1, bytesFetched: Buffer.byteLength('web v2') });
    expect(done.inventory?.previous.map((p) => p.version)).toEqual(['1.0.0']);

    const before = counters.get('agent_repeats_answered_total', { command: 'commit' });
    const changeovers = counters.get('agent_changeovers_total', { kind: 'commit', phase: 'completed' });
    expect(changeovers).toBeGreaterThanOrEqual(400); // r1 and r2 on the 200 web nodes
    nc.publish(subjects.node('web-3', 'commit'), encode({ rolloutId: 'r2', attempt: 0, nodeId: 'web-3', packages: [{ manifest: web2 }], changeoverTimeoutMs: 10_000 }));
    await waitFor('the repeated completion', () => progressOf('r2', 'completed').length === 201);
    expect(counters.get('agent_repeats_answered_total', { command: 'commit' })).toBe(before + 1);
    // Not changed over twice: answered from the record, no second changeover counted.
    expect(counters.get('agent_changeovers_total', { kind: 'commit', phase: 'completed' })).toBe(changeovers);
  });

  it('rejects malformed, misaddressed and out-of-order commands, counts them, and keeps running', async () => {
    const rejected = () => counters.get('agent_commands_rejected_total');
    const start = rejected();
    nc.publish(subjects.class('web', 'propose'), encode({ rolloutId: 'bad id!', attempt: 0 }));
    nc.publish(subjects.class('web', 'propose'), new TextEncoder().encode('not json'));
    nc.publish(subjects.node('web-1', 'commit'), encode({ rolloutId: 'r9', attempt: 0, nodeId: 'web-2', packages: [{ manifest: web2 }], changeoverTimeoutMs: 1000 }));
    nc.publish(subjects.class('web', 'propose'), encode({ rolloutId: 'r9', attempt: 0, classId: 'db', packages: [selectedOf(web2)], voteTimeoutMs: 1000 }));
    await waitFor('four rejections', () => rejected() >= start + 2 + 1 + 200);
    // An older attempt after a newer one was answered is refused, not re-run.
    nc.publish(subjects.node('web-1', 'propose'), encode({ rolloutId: 'r3', attempt: 2, nodeId: 'web-1', packages: [selectedOf(web)], voteTimeoutMs: 1000 }));
    await waitFor('vote r3', () => votesOf('r3').length === 1);
    nc.publish(subjects.node('web-1', 'propose'), encode({ rolloutId: 'r3', attempt: 1, nodeId: 'web-1', packages: [selectedOf(web)], voteTimeoutMs: 1000 }));
    await waitFor('out-of-order rejection', () => counters.get('agent_commands_rejected_total', { command: 'propose', code: 'CONFLICT' }) === 1);
    // A commit the node never accepted installs nothing.
    nc.publish(subjects.node('web-1', 'commit'), encode({ rolloutId: 'r8', attempt: 0, nodeId: 'web-1', packages: [{ manifest: web }], changeoverTimeoutMs: 1000 }));
    await waitFor('failed r8', () => progressOf('r8', 'failed').length === 1);
    expect(progressOf('r8', 'failed')[0]).toMatchObject({ error: { code: 'NOT_IN_ROLLOUT' }, inventory: { active: [{ name: 'web', version: '2.0.0' }] } });
    // Still serving.
    nc.publish(subjects.node('web-1', 'propose'), encode({ rolloutId: 'r4', attempt: 0, nodeId: 'web-1', packages: [selectedOf(web)], voteTimeoutMs: 1000 }));
    await waitFor('vote r4', () => votesOf('r4').length === 1);
  });

  it('vetoes with the configured rates and processor types: busy, no answer, unsupported', async () => {
    await fleet('busy', 20, { vetoRate: 1 });
    await fleet('slow', 5, { slowRate: 1 });
    await fleet('arm', 20, { armRatio: 0.5 });
    await waitFor('hellos', () => [...hellos].filter((h) => /^(busy|slow|arm)-/.test(h)).length === 45);
    nc.publish(subjects.class('busy', 'propose'), encode({ rolloutId: 'b1', attempt: 0, packages: [selectedOf(web)], voteTimeoutMs: 5000 }));
    nc.publish(subjects.class('slow', 'propose'), encode({ rolloutId: 's1', attempt: 0, packages: [selectedOf(web)], voteTimeoutMs: 300 }));
    nc.publish(subjects.class('arm', 'propose'), encode({ rolloutId: 'a1', attempt: 0, packages: [selectedOf(armOnly)], voteTimeoutMs: 5000 }));
    await waitFor('votes', () => votesOf('b1').length === 20 && votesOf('s1').length === 5 && votesOf('a1').length === 20);
    expect(votesOf('b1').every((v) => v.decision === 'veto' && v.verdicts.some((x) => x.decision === 'veto' && x.reason === 'PROCESS_BUSY' && x.retryAfterMs === 5000))).toBe(true);
    expect(votesOf('s1').every((v) => v.verdicts.some((x) => x.decision === 'veto' && x.reason === 'NO_ANSWER'))).toBe(true);
    const armVotes = votesOf('a1');
    const vetoes = armVotes.filter((v) => v.decision === 'veto');
    expect(vetoes.length).toBeGreaterThan(0);
    expect(vetoes.length).toBeLessThan(20);
    expect(vetoes.every((v) => v.verdicts.some((x) => x.decision === 'veto' && x.reason === 'PROCESSOR_UNSUPPORTED'))).toBe(true);
  });

  it('with trust roots, vetoes a tampered or untrusted signed proposal at vote time and installs nothing; accepts a correctly signed one', async () => {
    const publisher = generateKeyPairSync('ed25519');
    const rogue = generateKeyPairSync('ed25519');
    await fleet('trusted', 5, {}, signatureVerifier({ roots: { publisher: publisher.publicKey }, retired: [] }));
    await waitFor('hellos', () => [...hellos].filter((h) => h.startsWith('trusted-')).length === 5);
    const failures = counters.get('agent_signature_failures_total');
    const good = signManifest(web, publisher.privateKey, 'publisher');
    // Tampered: the selection and the manifest point at another blob, the signature is the original's.
    const evil = manifestOf('web', '1.0.0', [moduleOf('web-bin', '1.0.0', 'evil'), moduleOf('web-conf', '1.0.0', 'conf')]);
    const propose = (rolloutId: string, packages: unknown[], signed: unknown[]) =>
      nc.publish(subjects.class('trusted', 'propose'), encode({ rolloutId, attempt: 0, classId: 'trusted', packages, signed, voteTimeoutMs: 5000 }));
    propose('t-tampered', [selectedOf(evil)], [{ manifest: evil, signature: good.signature }]);
    propose('t-rogue', [selectedOf(web)], [signManifest(web, rogue.privateKey, 'publisher')]);
    propose('t-swapped', [selectedOf(evil)], [good]);
    propose('t-good', [selectedOf(web)], [good]);
    await waitFor('votes', () => ['t-tampered', 't-rogue', 't-swapped', 't-good'].every((r) => votesOf(r).length === 5));
    for (const r of ['t-tampered', 't-rogue', 't-swapped']) {
      expect(votesOf(r).every((v) => v.decision === 'veto' && v.verdicts.some((x) => x.processId === 'agent' && x.decision === 'veto' && x.reason === 'SIGNATURE_INVALID'))).toBe(true);
    }
    const swapped = votesOf('t-swapped')[0]!.verdicts.find((x) => x.decision === 'veto' && x.reason === 'SIGNATURE_INVALID');
    expect(swapped?.decision === 'veto' && swapped.message).toContain('digest');
    expect(votesOf('t-good').every((v) => v.decision === 'accept' && v.verdicts.every((x) => x.decision === 'accept'))).toBe(true);
    expect(counters.get('agent_signature_failures_total')).toBe(failures + 15);

    // The vetoed rollout installs nothing, even if a commit arrives; the accepted one installs.
    nc.publish(subjects.class('trusted', 'commit'), encode({ rolloutId: 't-tampered', attempt: 0, classId: 'trusted', packages: [{ manifest: evil, signature: good.signature }], changeoverTimeoutMs: 10_000 }));
    nc.publish(subjects.class('trusted', 'commit'), encode({ rolloutId: 't-good', attempt: 0, classId: 'trusted', packages: [good], changeoverTimeoutMs: 10_000 }));
    await waitFor('outcomes', () => progressOf('t-tampered', 'failed').length === 5 && progressOf('t-good', 'completed').length === 5);
    expect(progressOf('t-tampered', 'failed').every((p) => p.error?.code === 'NOT_IN_ROLLOUT' && p.inventory?.active.length === 0)).toBe(true);
    expect(progressOf('t-tampered', 'fetching')).toHaveLength(0);
    expect(progressOf('t-good', 'completed').every((p) => p.inventory?.active.map((x) => `${x.name}@${x.version}`).join() === 'web@1.0.0')).toBe(true);
  });

  it('installs on each node the variant the registry selects for its OS, labels and processor type, sharing one selection per kind of node', async () => {
    await fleet('mixed', 40, { armRatio: 0.5, labelled: { share: 0.5, labels: { gpu: 'true' } } });
    await waitFor('40 hellos', () => [...hellos].filter((h) => h.startsWith('mixed-')).length === 40);
    // Listed first, so a selection by processor type alone would take the Windows build everywhere it can.
    const windows = moduleOf('infer-bin', '1.0.0', 'windows build', { requires: { os: ['windows'] } });
    const gpu = moduleOf('infer-bin', '1.0.0', 'gpu build', { requires: { labels: { gpu: 'true' } } });
    const plain = moduleOf('infer-bin', '1.0.0', 'plain build');
    const arm = moduleOf('infer-bin', '1.0.0', 'arm build', { processorType: 'arm64' });
    const infer = manifestOf('infer', '1.0.0', [windows, gpu, plain, arm, moduleOf('infer-conf', '1.0.0', 'conf')]);
    const ids = [...helloOf.keys()].filter((id) => id.startsWith('mixed-'));
    const nodeOf = (id: string) => ({ processorType: helloOf.get(id)!.processorType as 'x86_64' | 'arm64', characteristics: helloOf.get(id)!.characteristics });
    const expected = (id: string) => {
      const n = nodeOf(id);
      return n.processorType === 'arm64' ? arm : n.characteristics.labels.gpu === 'true' ? gpu : plain;
    };
    // Every kind of node is in the fleet (the draws are deterministic).
    expect(new Set(ids.map((id) => expected(id).digest)).size).toBe(3);

    // Each node is proposed what the registry's selection gives for the traits it said hello with.
    for (const id of ids) {
      const r = selectPackage(infer, nodeOf(id));
      if (!r.ok) throw new Error(r.reason);
      expect(r.selected.modules.find((m) => m.name === 'infer-bin')!.digest).toBe(expected(id).digest);
      nc.publish(subjects.node(id, 'propose'), encode({ rolloutId: 'g1', attempt: 0, nodeId: id, packages: [r.selected], signed: [{ manifest: infer }], voteTimeoutMs: 5000 }));
    }
    await waitFor('40 votes', () => votesOf('g1').length === 40);
    // With the manifest at hand each node checks the proposal against its own selection: they agree.
    expect(votesOf('g1').filter((v) => v.decision !== 'accept').map((v) => v.verdicts)).toEqual([]);
    // A selection made for other characteristics (the GPU build for a node without the label) is vetoed at vote time.
    const plainNode = ids.find((id) => expected(id) === plain)!;
    const gpuNode = ids.find((id) => expected(id) === gpu)!;
    const forGpu = selectPackage(infer, nodeOf(gpuNode));
    if (!forGpu.ok) throw new Error(forGpu.reason);
    nc.publish(subjects.node(plainNode, 'propose'), encode({ rolloutId: 'g0', attempt: 0, nodeId: plainNode, packages: [forGpu.selected], signed: [{ manifest: infer }], voteTimeoutMs: 5000 }));
    await waitFor('the stale-selection vote', () => votesOf('g0').length === 1);
    expect(votesOf('g0')[0]).toMatchObject({ decision: 'veto', verdicts: expect.arrayContaining([expect.objectContaining({ decision: 'veto', reason: 'PROCESSOR_UNSUPPORTED', message: expect.stringContaining("this node's characteristics select") })]) });
    expect(counters.get('agent_selection_mismatches_total')).toBe(1);
    // One class broadcast carries the whole manifest; every node picks its own variant from it.
    nc.publish(subjects.class('mixed', 'commit'), encode({ rolloutId: 'g1', attempt: 0, classId: 'mixed', packages: [{ manifest: infer }], changeoverTimeoutMs: 10_000 }));
    await waitFor('40 completions', () => progressOf('g1', 'completed').length === 40);
    for (const p of progressOf('g1', 'completed')) {
      const installed = p.inventory!.active.find((x) => x.name === 'infer')!.modules;
      expect(installed.map((m) => m.digest).sort()).toEqual([expected(p.nodeId).digest, moduleOf('infer-conf', '1.0.0', 'conf').digest].sort());
    }

    // A package with only a GPU build: a forced commit installs it on the GPU nodes and fails, typed, on the others.
    const gpuOnly = manifestOf('cuda-kit', '1.0.0', [moduleOf('cuda-kit', '1.0.0', 'cuda', { requires: { labels: { gpu: 'true' } } })]);
    nc.publish(subjects.class('mixed', 'commit'), encode({ rolloutId: 'g2', attempt: 0, classId: 'mixed', forced: true, packages: [{ manifest: gpuOnly }], changeoverTimeoutMs: 10_000 }));
    await waitFor('40 outcomes', () => progressOf('g2', 'completed').length + progressOf('g2', 'failed').length === 40);
    const gpuNodes = ids.filter((id) => nodeOf(id).characteristics.labels.gpu === 'true').sort();
    expect(gpuNodes.length).toBeGreaterThan(0);
    expect(progressOf('g2', 'completed').map((p) => p.nodeId).sort()).toEqual(gpuNodes);
    expect(progressOf('g2', 'failed').every((p) => p.error?.code === 'PROCESSOR_UNSUPPORTED' && /needs label gpu=true/.test(p.error.message))).toBe(true);
  });
});
