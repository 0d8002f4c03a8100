import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Where `tsc -b` writes the console's browser modules (services/rollout/console → dist/console-app), from src/ or dist/. */
export const CONSOLE_APP_DIR = fileURLToPath(new URL('../../dist/console-app/', import.meta.url));

/** The console's compiled ES modules by file name, read once at start-up (empty when the console was not built). */
export function loadConsoleApp(dir = CONSOLE_APP_DIR): Map<string, Buffer> {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return new Map();
  }
  return new Map(names.filter((n) => /^[a-z][a-z0-9-]*\.js$/.test(n) && !n.includes('.spec.')).map((n) => [n, readFileSync(`${dir}${n}`)]));
}

/** No inline script or style anywhere, and nothing loaded from elsewhere: data shown by the page can never run. */
export const CONSOLE_HEADERS = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
} as const;

export const CONSOLE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Changeover console</title>
<link rel="stylesheet" href="/console/console.css">
<script type="module" src="/console/app/main.js"></script>
</head>
<body>
<header><strong>Changeover</strong><nav id="nav"></nav><span id="who"></span></header>
<main id="app"><p>Loading…</p></main>
</body>
</html>
`;

export const CONSOLE_CSS = `
:root { font: 14px/1.4 system-ui, sans-serif; color: #1d2330; background: #f5f6f8; }
body { margin: 0; }
header { display: flex; gap: 1.5rem; align-items: center; padding: .6rem 1.2rem; background: #1d2330; color: #fff; }
header nav { display: flex; gap: 1rem; flex: 1; }
header a { color: #cfe0ff; text-decoration: none; }
header a.current { color: #fff; font-weight: 600; border-bottom: 2px solid #7fb0ff; }
main { padding: 1rem 1.2rem; max-width: 1200px; }
h1 { font-size: 1.3rem; margin: .2rem 0 1rem; }
h2 { font-size: 1.05rem; margin: 1.2rem 0 .5rem; }
table { border-collapse: collapse; width: 100%; background: #fff; }
th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid #e3e6eb; vertical-align: top; }
th { background: #eef0f4; font-weight: 600; }
form.filters { display: flex; flex-wrap: wrap; gap: .6rem; align-items: end; margin-bottom: .8rem; }
form.filters label { display: flex; flex-direction: column; font-size: .8rem; color: #555; }
input, select, textarea, button { font: inherit; padding: .3rem .5rem; }
textarea { width: 100%; min-height: 8rem; font-family: ui-monospace, monospace; }
button { cursor: pointer; border: 1px solid #8a93a3; background: #fff; border-radius: 4px; }
button.primary { background: #2458c6; color: #fff; border-color: #2458c6; }
button.danger { background: #b3261e; color: #fff; border-color: #b3261e; }
button:disabled { opacity: .45; cursor: not-allowed; }
.status { display: inline-block; padding: 0 .45rem; border-radius: 3px; background: #e3e6eb; font-weight: 600; }
.status-completed, .status-active, .status-adjusted, .status-passed, .status-ready { background: #d4f0dc; color: #11622b; }
.status-blocked, .status-failed, .status-aborted, .status-stale, .status-refused { background: #fbd9d6; color: #8c1d15; }
.status-applying, .status-voting, .status-verifying, .status-adjusting { background: #dbe7ff; color: #1d3f8c; }
.status-paused, .status-cancelled { background: #fdf0c6; color: #6b5200; }
.actions { display: flex; gap: .5rem; margin: .8rem 0; flex-wrap: wrap; }
.panel { background: #fff; border: 1px solid #e3e6eb; padding: .8rem 1rem; margin-bottom: 1rem; }
.error { color: #8c1d15; background: #fbd9d6; padding: .5rem .8rem; margin: .5rem 0; }
.muted { color: #6b7280; }
.veto-node > summary { cursor: pointer; font-weight: 600; }
.veto-process { margin: .3rem 0 .3rem 1.2rem; }
.bar { height: .6rem; background: #e3e6eb; border-radius: 3px; overflow: hidden; min-width: 6rem; }
.bar > span { display: block; height: 100%; background: #2e9d52; }
ol.timeline { max-height: 18rem; overflow: auto; background: #fff; border: 1px solid #e3e6eb; margin: 0; padding: .5rem 2.5rem; font-family: ui-monospace, monospace; font-size: .85rem; }
`;
