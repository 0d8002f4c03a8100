import type { Command } from 'commander';
import { ApiRole, ApiTokenList, ApiTokenRecord, CreatedApiToken, CreateTokenRequest, parse } from '@changeover/contracts';
import type { RestClient } from './client.js';

const line = (t: ApiTokenRecord) => `${t.tokenId}  ${t.name.padEnd(20)} ${t.role.padEnd(8)} created ${t.createdAt} by ${t.createdBy}${t.revokedAt ? `  REVOKED ${t.revokedAt} by ${t.revokedBy}` : ''}`;

/** `changeover token create|list|revoke`: API tokens (admin role); the tokens are shared by every service. */
export function registerToken(program: Command, deps: { api: () => RestClient; out(text: string): void }): void {
  const token = program.command('token').description('API tokens and roles (needs an admin token in CHANGEOVER_TOKEN)');

  token
    .command('create')
    .description('create a token; its secret is printed once and stored nowhere')
    .requiredOption('--name <name>', 'who or what will use it ([A-Za-z0-9_.@-], up to 64)')
    .requiredOption('--role <role>', `one of ${ApiRole.options.join(', ')}`)
    .option('--json', 'machine-readable output')
    .action(async (o: { name: string; role: string; json?: boolean }) => {
      const body = parse(CreateTokenRequest, { name: o.name, role: o.role }, 'token');
      const t = parse(CreatedApiToken, await deps.api().request('POST', '/tokens', body), 'created token');
      deps.out(o.json ? JSON.stringify(t, null, 2) : `created ${t.tokenId} (${t.name}, ${t.role})\n${t.token}\nkeep it now: it is not shown again`);
    });

  token
    .command('list')
    .description('list tokens (never their secrets)')
    .option('--json', 'machine-readable output')
    .action(async (o: { json?: boolean }) => {
      const r = parse(ApiTokenList, await deps.api().request('GET', '/tokens'), 'token list');
      deps.out(o.json ? JSON.stringify(r, null, 2) : r.tokens.length ? r.tokens.map(line).join('\n') : 'no tokens');
    });

  token
    .command('revoke')
    .description('revoke a token at once')
    .argument('<token-id>', 'tok_… as listed')
    .option('--json', 'machine-readable output')
    .action(async (id: string, o: { json?: boolean }) => {
      const t = parse(ApiTokenRecord, await deps.api().request('DELETE', `/tokens/${encodeURIComponent(id)}`), 'revoked token');
      deps.out(o.json ? JSON.stringify(t, null, 2) : `revoked ${t.tokenId} (${t.name})`);
    });
}
