#!/usr/bin/env node
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RESTART_EXIT_CODE } from './upgrade/self-upgrade.js';

// Supervises the agent (what systemd or the DaemonSet runs): starts the agent package installed in the
// state directory, or this build's main.js when none is; starts it again when it exits with 75 after
// installing a new version of itself (DESIGN §6: the agent upgrade is a rollout). Reads AGENT_STATE_DIR
// and AGENT_PACKAGE as the agent does; everything else passes through to the agent.

const stateDir = process.env['AGENT_STATE_DIR'] || '/var/lib/changeover-agent';
const agentPackage = process.env['AGENT_PACKAGE'] || 'changeover-agent';
const builtIn = fileURLToPath(new URL('./main.js', import.meta.url));

/** The installed agent package's first module file, else the built-in agent. */
function entry(): string {
  try {
    const doc = JSON.parse(readFileSync(join(stateDir, 'state.json'), 'utf8')) as { state?: { active?: { manifest: { name: string }; modules: { digest: string }[] }[] } };
    const pkg = doc.state?.active?.find((p) => p.manifest.name === agentPackage);
    const file = pkg?.modules[0] ? join(stateDir, 'modules', pkg.modules[0].digest.replace(/^sha256:/, '')) : undefined;
    if (file && existsSync(file)) return file;
  } catch {
    // No state yet, or unreadable: the built-in agent starts and says so in its own checks.
  }
  return builtIn;
}

let stopping = false;
function run(): void {
  const child = spawn(process.execPath, [entry(), ...process.argv.slice(2)], { stdio: 'inherit', env: process.env });
  const forward = (signal: NodeJS.Signals) => () => {
    stopping = true;
    child.kill(signal);
  };
  const onTerm = forward('SIGTERM');
  const onInt = forward('SIGINT');
  process.once('SIGTERM', onTerm);
  process.once('SIGINT', onInt);
  child.once('exit', (code, signal) => {
    process.off('SIGTERM', onTerm);
    process.off('SIGINT', onInt);
    if (code === RESTART_EXIT_CODE && !stopping) return run();
    process.exit(code ?? (signal ? 128 : 1));
  });
}
run();
