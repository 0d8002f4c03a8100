import type { WhoAmI } from '@changeover/contracts';
import { ApiError, token, whoami } from './api.js';
import { h, show } from './dom.js';
import { rolloutPage } from './live.js';
import { auditPage, clusterPage, fleetPage, newRolloutPage, rolloutsPage } from './pages.js';

// The operator console: one page, routed by the location hash; every call is the REST API with the caller's token.

const app = document.getElementById('app')!;
const nav = document.getElementById('nav')!;
const who = document.getElementById('who')!;
let me: WhoAmI | null = null;
let leaving = new AbortController();

const SECTIONS = [
  ['#/fleet', 'Fleet'],
  ['#/rollouts', 'Rollouts'],
  ['#/cluster', 'Cluster version'],
  ['#/audit', 'Audit'],
] as const;

function loginPage(problem?: string): void {
  const input = h('input', { id: 'token', type: 'password', size: 60, autocomplete: 'off', placeholder: 'chg_…' });
  const form = h('form', { id: 'login' }, h('label', {}, 'API token ', input), ' ', h('button', { type: 'submit', class: 'primary' }, 'Sign in'));
  show(app, h('h1', {}, 'Sign in'), h('p', { class: 'muted' }, 'The token is kept in this tab only (session storage) and sent as a bearer token on every call.'), problem && h('div', { class: 'error', id: 'error' }, problem), form);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    token.set(input.value.trim());
    void start();
  });
}

function route(): void {
  leaving.abort();
  leaving = new AbortController();
  const hash = location.hash || '#/rollouts';
  for (const a of nav.querySelectorAll('a')) a.classList.toggle('current', hash.startsWith(a.getAttribute('href')!));
  const live = /^#\/rollouts\/([A-Za-z0-9_-]{1,64})$/.exec(hash);
  if (hash === '#/rollouts/new') newRolloutPage(app, (to) => (location.hash = to));
  else if (live && live[1] !== 'new') rolloutPage(app, live[1]!, me, leaving.signal);
  else if (hash.startsWith('#/fleet')) fleetPage(app);
  else if (hash.startsWith('#/cluster')) void clusterPage(app);
  else if (hash.startsWith('#/audit')) auditPage(app, me);
  else rolloutsPage(app, me);
}

async function start(): Promise<void> {
  if (!token.get()) return loginPage();
  try {
    me = await whoami();
  } catch (e) {
    token.clear();
    return loginPage(e instanceof ApiError ? `${e.code}: ${e.message}` : String(e));
  }
  show(nav, ...SECTIONS.map(([href, label]) => h('a', { href }, label)));
  show(
    who,
    h('span', { id: 'role', 'data-role': me.role }, `${me.name} (${me.role})`),
    ' ',
    h('button', {
      id: 'sign-out',
      onclick: () => {
        token.clear();
        me = null;
        leaving.abort();
        show(nav);
        show(who);
        loginPage();
      },
    }, 'Sign out'),
  );
  route();
}

window.addEventListener('hashchange', () => void (me ? route() : undefined));
void start();
