import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { createTestDatabase, freePort, startNats, waitFor, type TestDatabase, type TestNats } from '@changeover/test-kit';
import type { RolloutSummary } from '@changeover/contracts';
import { healthy, http, kill9, REPO_ROOT, startService, type Child } from '../testing/processes.js';

// The operator console in a real browser (Debian's chromium driven by playwright-core) against the
// built registry and rollout service and two simulated fleets as child processes: class edge has
// three willing nodes and busy-1, whose process vetoes every proposal. As admin: create a rollout,
// watch it block on the live page, drill into the veto (node → process → reason), force it and see
// it complete without a reload. As viewer: Force is disabled and a direct POST is 403.
// Screenshots: test-artifacts/console/*.png (gitignored).

jest.setTimeout(240_000);

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = join(REPO_ROOT, 'test-artifacts', 'console');
let db: TestDatabase;
let nats: TestNats;
let logDir: string;
let profileDir: string;
let registryBase: string;
let rolloutBase: string;
let viewerToken: string;
let adminToken: string;
let context: BrowserContext;
const children: Child[] = [];

async function publish(name: string, version: string): Promise<void> {
  const blob = Buffer.from(`${name} ${version}\n`);
  const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
  const manifest = { name, version, description: '', modules: [{ name, version, processorType: 'any', size: blob.length, digest, dependsOn: [], requires: {} }], requires: {}, provides: [], consumes: [] };
  const r = await http('POST', `${registryBase}/packages`, { package: { manifest }, blobs: { [digest]: blob.toString('base64') } });
  expect([200, 201]).toContain(r.status);
}

const shot = (page: Page, name: string) => page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });

/** A tab signed in with `token` (each tab has its own session storage). */
async function signedIn(token: string, role: string): Promise<Page> {
  const page = await context.newPage();
  await page.goto(`${rolloutBase}/console`);
  await page.fill('#token', token);
  await page.click('#login button[type=submit]');
  await page.waitForSelector(`#role[data-role=${role}]`);
  return page;
}

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y --no-install-recommends chromium (.ci/run does it)`);
  mkdirSync(ARTIFACTS, { recursive: true });
  logDir = mkdtempSync(join(tmpdir(), 'changeover-console-'));
  profileDir = mkdtempSync(join(tmpdir(), 'changeover-chromium-'));
  [db, nats] = await Promise.all([createTestDatabase('rollout_console_e2e'), startNats()]);
  const [registryPort, rolloutPort, edgeHealth, busyHealth] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
  registryBase = `http://127.0.0.1:${registryPort}`;
  rolloutBase = `http://127.0.0.1:${rolloutPort}`;
  const common = { DATABASE_URL: db.url, NATS_URL: nats.url, LOG_LEVEL: 'warn' };
  children.push(startService('registry', 'services/registry', [], { ...common, REGISTRY_HTTP_PORT: String(registryPort), REGISTRY_HTTP_HOST: '127.0.0.1', REGISTRY_RELAY: 'false' }, logDir));
  children.push(startService('rollout', 'services/rollout', [], { ...common, ROLLOUT_HTTP_PORT: String(rolloutPort), ROLLOUT_HTTP_HOST: '127.0.0.1', ROLLOUT_RELAY: 'true' }, logDir));
  await Promise.all([healthy(registryBase, 'the registry'), healthy(rolloutBase, 'the rollout service')]);
  children.push(startService('fleet-edge', 'services/node-agent', ['--simulate', '3', '--class', 'edge', '--node-prefix', 'edge', '--heartbeat-ms', '500'], { NATS_URL: nats.url, AGENT_HEALTH_PORT: String(edgeHealth), LOG_LEVEL: 'warn' }, logDir));
  children.push(startService('fleet-busy', 'services/node-agent', ['--simulate', '1', '--class', 'edge', '--node-prefix', 'busy', '--veto-rate', '1', '--heartbeat-ms', '500'], { NATS_URL: nats.url, AGENT_HEALTH_PORT: String(busyHealth), LOG_LEVEL: 'warn' }, logDir));
  await waitFor('four active edge nodes', async () => ((await http<{ nodes: unknown[] }>('GET', `${registryBase}/nodes?classId=edge&status=active`)).body.nodes?.length === 4 ? true : null), { timeoutMs: 60_000, intervalMs: 200 });
  await publish('app', '1.0.0');
  const viewer = await http<{ token: string }>('POST', `${rolloutBase}/tokens`, { name: 'vera', role: 'viewer' });
  const adminMade = await http<{ token: string }>('POST', `${rolloutBase}/tokens`, { name: 'ada', role: 'admin' });
  expect([viewer.status, adminMade.status]).toEqual([201, 201]);
  viewerToken = viewer.body.token;
  adminToken = adminMade.body.token;
  context = await chromium.launchPersistentContext(profileDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 900 },
  });
  // A loaded CI machine runs other suites beside this one.
  context.setDefaultTimeout(60_000);
}, 180_000);

afterAll(async () => {
  await context?.close();
  for (const c of children) await kill9(c);
  await nats?.stop();
  await db?.drop();
  if (profileDir) rmSync(profileDir, { recursive: true, force: true });
}, 60_000);

describe('the operator console in a browser', () => {
  let admin: Page;
  let viewer: Page;
  let rolloutId = '';

  it('signs in as admin and lists the fleet by class, status, version, with a search', async () => {
    admin = await signedIn(adminToken, 'admin');
    await admin.goto(`${rolloutBase}/console#/fleet`);
    await admin.waitForSelector('table.fleet >> text=busy-1');
    const rows = await admin.locator('table.fleet tbody tr').allInnerTexts();
    expect(rows.map((r) => r.split('\t')[0])).toEqual(['busy-1', 'edge-1', 'edge-2', 'edge-3']);
    expect(rows.every((r) => r.includes('edge') && r.includes('active'))).toBe(true);
    await shot(admin, 'fleet');
    await admin.fill('#f-search', 'busy');
    await admin.click('#filters button[type=submit]');
    await waitFor('the search applied', async () => ((await admin.locator('table.fleet tbody tr').count()) === 1 ? true : null), { timeoutMs: 15_000, intervalMs: 100 });
    expect(await admin.locator('table.fleet tbody tr').innerText()).toContain('busy-1');
  });

  it('creates a rollout and watches it block on the live page, the veto drilled down to node, process and reason', async () => {
    await admin.goto(`${rolloutBase}/console#/rollouts/new`);
    await admin.fill('#f-description', 'app 1.0.0 to edge');
    await admin.fill('#f-packages', 'app@1.0.0');
    await admin.fill('#f-classes', 'edge');
    await admin.click('#create-submit');
    await admin.waitForURL(/#\/rollouts\/r-/);
    rolloutId = decodeURIComponent(new URL(admin.url()).hash.slice('#/rollouts/'.length));
    await admin.waitForSelector('#live [data-state=live]');
    await admin.waitForSelector('#rollout [data-status=blocked]', { timeout: 60_000 });
    expect(await admin.locator('#stuck').innerText()).toContain('vetoed by 1 node(s): PROCESS_BUSY');
    expect(await admin.locator('#timeline li[data-type="rollout.blocked"]').count()).toBe(1);
    await admin.click('details.veto-node[data-node=busy-1] > summary');
    const processes = admin.locator('details.veto-node[data-node=busy-1] details.veto-process');
    expect(await processes.count()).toBeGreaterThan(0);
    await processes.first().locator('summary').click();
    const reason = await processes.first().locator('.veto-reason').innerText();
    expect(reason).toMatch(/^PROCESS_BUSY: .+ is busy \(simulated\) \(retry after 5 s\)$/);
    expect(await admin.locator('#action-force').isEnabled()).toBe(true);
    await shot(admin, 'live-blocked-veto');
  });

  it('as viewer: sees the same live page with Force disabled, and a direct force is 403', async () => {
    viewer = await signedIn(viewerToken, 'viewer');
    await viewer.goto(`${rolloutBase}/console#/rollouts/${rolloutId}`);
    await viewer.waitForSelector('#rollout [data-status=blocked]');
    const force = viewer.locator('#action-force');
    expect(await force.isDisabled()).toBe(true);
    expect(await force.getAttribute('title')).toBe('needs the admin role');
    expect(await viewer.locator('#action-cancel').isDisabled()).toBe(true);
    // The server refuses it whatever the page shows: from the viewer's tab, and from outside.
    const fromTab = await viewer.evaluate(async (id) => {
      // Runs in the tab: the token the page keeps in its session storage.
      const stored = (globalThis as unknown as { sessionStorage: { getItem(k: string): string | null } }).sessionStorage.getItem('changeover-console-token');
      const res = await fetch(`/rollouts/${id}/force`, { method: 'POST', headers: { authorization: `Bearer ${stored}`, 'content-type': 'application/json' }, body: JSON.stringify({ reason: 'not mine to force' }) });
      return { status: res.status, body: (await res.json()) as { code: string } };
    }, rolloutId);
    expect(fromTab).toEqual({ status: 403, body: expect.objectContaining({ code: 'FORBIDDEN' }) });
    const direct = await fetch(`${rolloutBase}/rollouts/${rolloutId}/force`, { method: 'POST', headers: { authorization: `Bearer ${viewerToken}`, 'content-type': 'application/json' }, body: JSON.stringify({ reason: 'x' }) });
    expect(direct.status).toBe(403);
    expect((await http<RolloutSummary>('GET', `${rolloutBase}/rollouts/${rolloutId}`)).body.status).toBe('blocked');
    await shot(viewer, 'viewer-force-disabled');
  });

  it('as admin: forces it and sees it complete live, on both tabs, without a reload', async () => {
    await admin.fill('#reason', 'busy-1 export can be restarted');
    await admin.click('#action-force');
    await admin.waitForSelector('#rollout [data-status=completed]', { timeout: 60_000 });
    expect(await admin.locator('#forced').innerText()).toContain('Forced by ada: busy-1 export can be restarted');
    expect(await admin.locator('#progress').innerText()).toContain('4 of 4 nodes completed');
    await admin.waitForSelector('#timeline li[data-type="rollout.completed"]');
    expect(await admin.locator('#timeline li[data-type="rollout.forced"]').count()).toBe(1);
    await admin.waitForSelector('#live [data-state=ended]');
    // The viewer's tab heard it on its own stream.
    await viewer.waitForSelector('#rollout [data-status=completed]', { timeout: 60_000 });
    await shot(admin, 'live-completed');
    await shot(viewer, 'viewer-completed');
    const done = (await http<RolloutSummary>('GET', `${rolloutBase}/rollouts/${rolloutId}`)).body;
    expect(done).toMatchObject({ status: 'completed', phases: { completed: 4 }, forced: { by: 'ada', reason: 'busy-1 export can be restarted' } });
  });

  it('lists the nodes now running the version, by package filter', async () => {
    await admin.goto(`${rolloutBase}/console#/fleet`);
    await admin.fill('#f-package', 'app@1.0.0');
    await admin.click('#filters button[type=submit]');
    // The registry takes each node's inventory from the rollout's completion events: wait for all four.
    await waitFor('four nodes with app@1.0.0 active', async () => {
      await admin.click('#filters button[type=submit]');
      await admin.waitForSelector('#list p');
      const rows = await admin.locator('table.fleet tbody tr').allInnerTexts();
      return rows.length === 4 && rows.every((r) => r.includes('app@1.0.0')) ? rows : null;
    }, { timeoutMs: 30_000, intervalMs: 500 });
    await shot(admin, 'fleet-by-package');
  });

  it('shows the history, the cluster version status and the audit trail', async () => {
    await admin.goto(`${rolloutBase}/console#/rollouts`);
    await admin.fill('#f-status', 'completed');
    await admin.click('#filters button[type=submit]');
    await admin.waitForSelector(`table.rollouts >> text=${rolloutId}`);
    await shot(admin, 'rollouts');
    await admin.goto(`${rolloutBase}/console#/cluster`);
    await admin.waitForSelector('#cluster-nodes');
    const nodes = await admin.locator('#cluster-nodes tbody tr').allInnerTexts();
    expect(nodes).toHaveLength(4);
    expect(nodes.every((r) => /\d+\.\d+\.\d+/.test(r))).toBe(true);
    expect(await admin.locator('#gates tbody tr').count()).toBe(3);
    // Version 2: every agent here runs 1-1 only, so the capability gate blocks, naming each node.
    await admin.fill('#f-version', '2');
    await admin.click('#check button[type=submit]');
    await admin.waitForSelector('table#blockers');
    const gates = await admin.locator('#gates tbody tr').allInnerTexts();
    expect(gates).toEqual([expect.stringMatching(/node is active\s+passed/), expect.stringMatching(/partitioned\s+passed/), expect.stringMatching(/candidate version\s+blocked 4 blockers/)]);
    const blockers = await admin.locator('table#blockers tbody tr').allInnerTexts();
    expect(blockers.map((r) => r.split('\t').slice(0, 2).join(' ')).sort()).toEqual(['NODE_INCAPABLE busy-1', 'NODE_INCAPABLE edge-1', 'NODE_INCAPABLE edge-2', 'NODE_INCAPABLE edge-3']);
    await shot(admin, 'cluster-version');
    await admin.goto(`${rolloutBase}/console#/audit`);
    await admin.waitForSelector('table.audit >> text=force');
    const force = (await admin.locator('table.audit tbody tr').allInnerTexts()).find((r) => r.includes('\tforce\t'));
    expect(force).toContain('ada');
    expect(force).toContain('busy-1 export can be restarted');
    await shot(admin, 'audit');
    await viewer.goto(`${rolloutBase}/console#/audit`);
    await viewer.waitForSelector('text=the audit trail needs the operator role');
  });
});
