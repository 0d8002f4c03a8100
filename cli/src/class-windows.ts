import type { Command } from 'commander';
import { ChangeoverError, ClassWindows, parse, SetClassWindowsRequest, WEEKDAYS, type MaintenanceWindow, type Weekday } from '@changeover/contracts';
import type { RestClient } from './client.js';

/** `mon-fri`, `sat,sun`, `tue`: the days a window opens on. */
function days(spec: string): Weekday[] {
  const out = new Set<Weekday>();
  for (const part of spec.toLowerCase().split(',')) {
    const [from, to] = part.split('-') as [string, string | undefined];
    const a = WEEKDAYS.indexOf(from as Weekday);
    const b = to === undefined ? a : WEEKDAYS.indexOf(to as Weekday);
    if (a < 0 || b < 0 || b < a) throw new ChangeoverError('VALIDATION_FAILED', `--window days ${JSON.stringify(part)}: use mon..sun, a range (mon-fri) or a list (sat,sun)`);
    for (let i = a; i <= b; i++) out.add(WEEKDAYS[i]!);
  }
  return [...out];
}

/** `mon-fri 02:00-04:00 Europe/Berlin` → a window (the contract checks times and the time zone). */
export function windowSpec(spec: string): MaintenanceWindow {
  const parts = spec.trim().split(/\s+/);
  const times = parts[1]?.split('-');
  if (parts.length !== 3 || times?.length !== 2) throw new ChangeoverError('VALIDATION_FAILED', `--window ${JSON.stringify(spec)}: expected "<days> <HH:MM>-<HH:MM> <time zone>", e.g. "mon-fri 02:00-04:00 Europe/Berlin"`);
  return { days: days(parts[0]!), start: times[0]!, end: times[1]!, timeZone: parts[2]! };
}

const describeWindow = (w: MaintenanceWindow) => `${w.days.join(',')} ${w.start}-${w.end} ${w.timeZone}${w.end <= w.start ? ' (ends the next day)' : ''}`;

export function renderWindows(c: ClassWindows): string {
  const lines = [`class ${c.classId}: ${c.windows.length ? `${c.windows.length} maintenance window(s)` : 'no maintenance window (waves start at any time)'}`];
  for (const w of c.windows) lines.push(`  ${describeWindow(w)}`);
  if (c.windows.length) lines.push(c.openNow ? '  open now' : `  closed now; next opens ${c.nextOpening ?? '-'}`);
  if (c.updatedBy) lines.push(`  set by ${c.updatedBy} at ${c.updatedAt}`);
  return lines.join('\n');
}

/** `changeover class windows show|set <class>`: maintenance windows (rollouts created afterwards start waves only inside them). */
export function registerClassWindows(program: Command, deps: { api: () => RestClient; out(text: string): void }): void {
  const windows = program.command('class').description('node classes in the rollout service').command('windows').description('maintenance windows of a class: no new wave of a rollout starts outside them');
  const path = (c: string) => `/classes/${encodeURIComponent(c)}/windows`;

  windows
    .command('show')
    .argument('<class>')
    .option('--json', 'machine-readable output')
    .action(async (classId: string, o: { json?: boolean }) => {
      const c = parse(ClassWindows, await deps.api().request('GET', path(classId)), 'class windows');
      deps.out(o.json ? JSON.stringify(c, null, 2) : renderWindows(c));
    });

  windows
    .command('set')
    .description('replace the class\'s windows (each --window "<days> <HH:MM>-<HH:MM> <IANA time zone>"; an end before the start crosses midnight)')
    .argument('<class>')
    .option('-w, --window <spec...>', 'e.g. "mon-fri 02:00-04:00 Europe/Berlin"')
    .option('--clear', 'remove every window')
    .option('--json', 'machine-readable output')
    .action(async (classId: string, o: { window?: string[]; clear?: boolean; json?: boolean }) => {
      if (!o.clear && !o.window?.length) throw new ChangeoverError('VALIDATION_FAILED', 'give --window "<days> <HH:MM>-<HH:MM> <time zone>" (or --clear)');
      const body = parse(SetClassWindowsRequest, { windows: o.clear ? [] : o.window!.map(windowSpec) }, 'class windows');
      const c = parse(ClassWindows, await deps.api().request('PUT', path(classId), body), 'class windows');
      deps.out(o.json ? JSON.stringify(c, null, 2) : renderWindows(c));
    });
}
