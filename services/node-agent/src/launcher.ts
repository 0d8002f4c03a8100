#!/usr/bin/env node
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeAtomic } from './store/atomic-file.js';
import { LauncherConfig } from './config.js';
import { LAUNCH_FILES, type RollbackNote } from './upgrade/launcher-config.js';
import { RESTART_EXIT_CODE } from './upgrade/self-upgrade.js';
import { HANDOVER_MESSAGES } from './upgrade/socket-handover.js';
import { PROBATION_HEALTH_FAILURES, PROBATION_MESSAGES } from './upgrade/probation.js';
import { HANDOVER_FILE } from './runtime/adoption.js';

// Supervises the agent (what systemd or the DaemonSet runs): starts the agent package installed in the
// state directory, or this build's main.js when none is; starts it again when it exits with 75 after
// installing a new version of itself (DESIGN §6: the agent upgrade is a rollout). A version started
// that way must come up within AGENT_UPGRADE_START_TIMEOUT_MS, and is then on probation for
// AGENT_UPGRADE_PROBATION_MS: it must not exit, and its /health/ready (with AGENT_HEALTH_PORT) must not
// fail PROBATION_HEALTH_FAILURES polls in a row. If it fails either, the launcher kills it and starts the
// version that ran before, which adopts the module processes again (they keep serving throughout),
// reports the upgrade failed and regresses. The new version holds its completion until probation passed.

const parsed = LauncherConfig.safeParse({
  AGENT_STATE_DIR: process.env['AGENT_STATE_DIR'] || undefined,
  AGENT_PACKAGE: process.env['AGENT_PACKAGE'] || undefined,
  AGENT_UPGRADE_START_TIMEOUT_MS: process.env['AGENT_UPGRADE_START_TIMEOUT_MS'] || undefined,
  AGENT_UPGRADE_PROBATION_MS: process.env['AGENT_UPGRADE_PROBATION_MS'] || undefined,
  AGENT_HEALTH_PORT: process.env['AGENT_HEALTH_PORT'] || undefined,
});
if (!parsed.success) {
  process.stderr.write(`invalid launcher configuration: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}\n`);
  process.exit(2);
}
const config = parsed.data;
const builtIn = fileURLToPath(new URL('./main.js', import.meta.url));
const readyFile = join(config.AGENT_STATE_DIR, LAUNCH_FILES.ready);
const runDir = join(config.AGENT_STATE_DIR, 'run');

/** The installed agent package's first module file, else the built-in agent. */
function entry(): string {
  try {
    const doc = JSON.parse(readFileSync(join(config.AGENT_STATE_DIR, 'state.json'), 'utf8')) as { state?: { active?: { manifest: { name: string }; modules: { digest: string }[] }[] } };
    const pkg = doc.state?.active?.find((p) => p.manifest.name === config.AGENT_PACKAGE);
    const file = pkg?.modules[0] ? join(config.AGENT_STATE_DIR, 'modules', pkg.modules[0].digest.replace(/^sha256:/, '')) : undefined;
    if (file && existsSync(file)) return file;
  } catch {
    // No state yet, or unreadable: the built-in agent starts and says so in its own checks.
  }
  return builtIn;
}

let stopping = false;
let current: ChildProcess | undefined;
type Held = { msg: { kind: string; host: string; port: number }; handle: { close(): void } };
/** Listening sockets an agent handed over before exiting for its upgrade, held for the version that follows. */
let held: Held[] = [];

/** Where a version started after a self-upgrade is: coming up, up and on probation, or trusted. */
type Stage = 'starting' | 'probation' | 'settled';
interface Watch {
  stage: Stage;
  /** Sockets given to a version not yet trusted: kept until it is, for the version started instead on a rollback. */
  lent: Held[];
  probationEndsAt: number;
}

/** The socket handover and the probation question over the IPC channel (upgrade/socket-handover.ts and upgrade/probation.ts hold the agent's side). */
function relay(child: ChildProcess, watch: Watch): void {
  child.on('message', (msg: { kind?: string; host?: string; port?: number }, handle?: { close(): void }) => {
    if (msg?.kind === HANDOVER_MESSAGES.socket && handle && typeof msg.host === 'string' && typeof msg.port === 'number') {
      held.push({ msg: { kind: msg.kind, host: msg.host, port: msg.port }, handle });
    } else if (msg?.kind === HANDOVER_MESSAGES.held) {
      child.send({ kind: HANDOVER_MESSAGES.held, count: held.length });
    } else if (msg?.kind === HANDOVER_MESSAGES.request) {
      const giving = held;
      held = [];
      void (async () => {
        for (const h of giving) await new Promise<void>((resolve) => child.send(h.msg, h.handle as never, {}, () => resolve()));
        child.send({ kind: HANDOVER_MESSAGES.done });
        // The agent holds its own copies now; a version on trial does not get ours until it is trusted.
        if (watch.stage === 'settled') for (const h of giving) h.handle.close();
        else watch.lent.push(...giving);
      })();
    } else if (msg?.kind === PROBATION_MESSAGES.query) {
      const state = watch.stage === 'settled' ? { state: 'passed' } : { state: 'watching', remainingMs: Math.max(0, watch.probationEndsAt - Date.now()) };
      if (child.connected) child.send({ kind: PROBATION_MESSAGES.state, ...state });
    }
  });
}
const forward = (signal: NodeJS.Signals) => () => {
  stopping = true;
  current?.kill(signal);
};
process.on('SIGTERM', forward('SIGTERM'));
process.on('SIGINT', forward('SIGINT'));

const log = (level: string, msg: string, fields: Record<string, unknown>) => process.stderr.write(`${JSON.stringify({ level, msg, ...fields })}\n`);

/** One poll of the agent's readiness endpoint: null when healthy, else what failed. */
async function healthFailure(): Promise<string | null> {
  try {
    const res = await fetch(`http://127.0.0.1:${config.AGENT_HEALTH_PORT}/health/ready`, { signal: AbortSignal.timeout(1000) });
    await res.body?.cancel();
    return res.status === 200 ? null : `/health/ready answered ${res.status}`;
  } catch (e) {
    return `/health/ready: ${e instanceof Error ? e.message : String(e)}`;
  }
}

/**
 * Starts `file`. After a self-upgrade (`lastGood` set) the new version is watched until it writes
 * its ready file, then through its probation; one that exits, misses the deadline or turns unhealthy
 * first is killed and `lastGood` started.
 */
function run(file: string, lastGood?: string): void {
  rmSync(readyFile, { force: true });
  const child = spawn(process.execPath, [file, ...process.argv.slice(2)], { stdio: ['inherit', 'inherit', 'inherit', 'ipc'], env: process.env });
  current = child;
  const watch: Watch = { stage: lastGood ? 'starting' : 'settled', lent: [], probationEndsAt: 0 };
  relay(child, watch);
  let timer: NodeJS.Timeout | undefined;
  let health: NodeJS.Timeout | undefined;
  const stopWatching = () => {
    clearInterval(timer);
    clearInterval(health);
  };
  const settle = () => {
    stopWatching();
    watch.stage = 'settled';
    for (const h of watch.lent.splice(0)) h.handle.close();
    if (child.connected) child.send({ kind: PROBATION_MESSAGES.state, state: 'passed' });
  };
  const rollBack = (reason: string, stage: 'start' | 'probation') => {
    if (watch.stage === 'settled' || stopping) return;
    watch.stage = 'settled';
    stopWatching();
    log('error', stage === 'probation' ? 'new agent version failed its probation: rolling back' : 'new agent version did not come up: rolling back', { reason, stage, failedEntry: file, lastGood });
    child.removeAllListeners('exit');
    // The version started instead gets the sockets back, and adopts the module processes the failed one
    // ran (their records are in the run directory): they keep serving, nothing is restarted.
    held = [...watch.lent.splice(0), ...held];
    const note: RollbackNote = { failedEntry: file, reason, at: new Date().toISOString(), stage };
    const restartOld = () => {
      try {
        if (existsSync(runDir)) writeFileSync(join(runDir, HANDOVER_FILE), String(child.pid));
      } catch (e) {
        log('error', 'cannot hand the module processes back', { error: String(e) });
      }
      void writeAtomic(join(config.AGENT_STATE_DIR, LAUNCH_FILES.rollback), JSON.stringify(note)).then(() => run(lastGood!), (e: unknown) => {
        log('error', 'cannot record the rollback', { error: String(e) });
        run(lastGood!);
      });
    };
    if (child.exitCode !== null || child.signalCode !== null) return restartOld();
    child.once('exit', restartOld);
    child.kill('SIGKILL');
  };
  const probation = () => {
    clearInterval(timer);
    if (config.AGENT_UPGRADE_PROBATION_MS === 0) return settle();
    watch.stage = 'probation';
    watch.probationEndsAt = Date.now() + config.AGENT_UPGRADE_PROBATION_MS;
    timer = setInterval(() => {
      if (Date.now() < watch.probationEndsAt || watch.stage !== 'probation') return;
      settle();
      log('info', 'new agent version passed its probation', { entry: file, probationMs: config.AGENT_UPGRADE_PROBATION_MS });
    }, 100);
    if (config.AGENT_HEALTH_PORT > 0) {
      let failures = 0;
      let polling = false;
      health = setInterval(() => {
        if (polling) return;
        polling = true;
        void healthFailure().then((failure) => {
          polling = false;
          if (watch.stage !== 'probation') return;
          failures = failure ? failures + 1 : 0;
          if (failure && failures >= PROBATION_HEALTH_FAILURES) rollBack(`unhealthy during its probation: ${failure} (${failures} polls in a row)`, 'probation');
        });
      }, 500);
    }
  };
  if (lastGood) {
    const deadline = Date.now() + config.AGENT_UPGRADE_START_TIMEOUT_MS;
    timer = setInterval(() => {
      let pid = '';
      try {
        pid = readFileSync(readyFile, 'utf8').trim();
      } catch {
        // not up yet
      }
      if (pid === String(child.pid)) probation();
      else if (Date.now() >= deadline) rollBack(`not up within ${config.AGENT_UPGRADE_START_TIMEOUT_MS} ms`, 'start');
    }, 100);
  }
  child.once('exit', (code, signal) => {
    const how = signal ?? `code ${code}`;
    if (!stopping && watch.stage === 'starting') return rollBack(`exited with ${how} before it was up`, 'start');
    if (!stopping && watch.stage === 'probation') return rollBack(`exited with ${how} ${config.AGENT_UPGRADE_PROBATION_MS - Math.max(0, watch.probationEndsAt - Date.now())} ms into its probation`, 'probation');
    stopWatching();
    if (code === RESTART_EXIT_CODE && !stopping) return run(entry(), file);
    process.exit(code ?? (signal ? 128 : 1));
  });
}
run(entry());
