#!/usr/bin/env node
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeAtomic } from './store/atomic-file.js';
import { LauncherConfig } from './config.js';
import { LAUNCH_FILES, type RollbackNote } from './upgrade/launcher-config.js';
import { RESTART_EXIT_CODE } from './upgrade/self-upgrade.js';
import { HANDOVER_MESSAGES } from './upgrade/socket-handover.js';

// Supervises the agent (what systemd or the DaemonSet runs): starts the agent package installed in the
// state directory, or this build's main.js when none is; starts it again when it exits with 75 after
// installing a new version of itself (DESIGN §6: the agent upgrade is a rollout). A version started
// that way must come up within AGENT_UPGRADE_START_TIMEOUT_MS; if it exits or does not, the launcher
// kills it and starts the version that ran before, which reports the upgrade failed and regresses.

const parsed = LauncherConfig.safeParse({
  AGENT_STATE_DIR: process.env['AGENT_STATE_DIR'] || undefined,
  AGENT_PACKAGE: process.env['AGENT_PACKAGE'] || undefined,
  AGENT_UPGRADE_START_TIMEOUT_MS: process.env['AGENT_UPGRADE_START_TIMEOUT_MS'] || undefined,
});
if (!parsed.success) {
  process.stderr.write(`invalid launcher configuration: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}\n`);
  process.exit(2);
}
const config = parsed.data;
const builtIn = fileURLToPath(new URL('./main.js', import.meta.url));
const readyFile = join(config.AGENT_STATE_DIR, LAUNCH_FILES.ready);

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
/** Listening sockets an agent handed over before exiting for its upgrade, held for the version that follows. */
let held: { msg: { kind: string; host: string; port: number }; handle: { close(): void } }[] = [];

/** The socket handover over the IPC channel (upgrade/socket-handover.ts holds the agent's side). */
function relaySockets(child: ChildProcess): void {
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
        // The agent holds its own copies now.
        for (const h of giving) h.handle.close();
      })();
    }
  });
}
const forward = (signal: NodeJS.Signals) => () => {
  stopping = true;
  current?.kill(signal);
};
process.on('SIGTERM', forward('SIGTERM'));
process.on('SIGINT', forward('SIGINT'));

/**
 * Starts `file`. After a self-upgrade (`lastGood` set) the new version is watched until it writes
 * its ready file; one that exits first or misses the deadline is killed and `lastGood` started.
 */
function run(file: string, lastGood?: string): void {
  rmSync(readyFile, { force: true });
  const child = spawn(process.execPath, [file, ...process.argv.slice(2)], { stdio: ['inherit', 'inherit', 'inherit', 'ipc'], env: process.env });
  current = child;
  relaySockets(child);
  let settled = !lastGood;
  let timer: NodeJS.Timeout | undefined;
  const rollBack = (reason: string) => {
    if (settled || stopping) return;
    settled = true;
    clearInterval(timer);
    process.stderr.write(`${JSON.stringify({ level: 'error', msg: 'new agent version did not come up: rolling back', reason, failedEntry: file, lastGood })}\n`);
    child.removeAllListeners('exit');
    const note: RollbackNote = { failedEntry: file, reason, at: new Date().toISOString() };
    const restartOld = () => void writeAtomic(join(config.AGENT_STATE_DIR, LAUNCH_FILES.rollback), JSON.stringify(note)).then(() => run(lastGood!), (e: unknown) => {
      process.stderr.write(`cannot record the rollback: ${String(e)}\n`);
      run(lastGood!);
    });
    if (child.exitCode !== null || child.signalCode !== null) return restartOld();
    child.once('exit', restartOld);
    child.kill('SIGKILL');
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
      if (pid === String(child.pid)) {
        settled = true;
        clearInterval(timer);
      } else if (Date.now() >= deadline) {
        rollBack(`not up within ${config.AGENT_UPGRADE_START_TIMEOUT_MS} ms`);
      }
    }, 100);
  }
  child.once('exit', (code, signal) => {
    if (!settled) return rollBack(`exited with ${signal ?? `code ${code}`} before it was up`);
    clearInterval(timer);
    if (code === RESTART_EXIT_CODE && !stopping) return run(entry(), file);
    process.exit(code ?? (signal ? 128 : 1));
  });
}
run(entry());
