import { randomBytes } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeAtomic } from '../store/atomic-file.js';
import type { LocalApiServer } from './local-api-server.js';

/** Where the credential of a process the agent does not start (AGENT_EXTERNAL_PROCESSES) is kept. */
export const externalCredentialPath = (stateDir: string, processId: string): string => join(stateDir, 'credentials', `${processId}.token`);

/**
 * Processes another supervisor starts (systemd, an operator) speak to the local API with a
 * credential the agent keeps in the state directory (0600, directory 0700): whoever may read the
 * file may speak as that id. The file outlives agent restarts, so such a process reconnects after an
 * upgrade with the credential it already holds.
 */
export async function adoptExternalCredentials(api: LocalApiServer, stateDir: string, processIds: readonly string[]): Promise<void> {
  if (!processIds.length) return;
  await mkdir(join(stateDir, 'credentials'), { recursive: true, mode: 0o700 });
  for (const processId of processIds) {
    const path = externalCredentialPath(stateDir, processId);
    let token = await readFile(path, 'utf8').then((t) => t.trim(), () => '');
    if (!token) {
      token = randomBytes(32).toString('base64url');
      await writeAtomic(path, token);
    }
    api.adoptCredential(processId, token);
  }
}
