import { WEEKDAYS, type MaintenanceWindow, type Weekday } from '@changeover/contracts';

const MINUTE = 60_000;
const WEEK_MINUTES = 7 * 24 * 60;
/** A week and a day: every weekly window opens at least once in this span from any instant. */
const HORIZON_MINUTES = WEEK_MINUTES + 24 * 60 + 180;

const formatters = new Map<string, Intl.DateTimeFormat>();
function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', { timeZone, weekday: 'short', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
    formatters.set(timeZone, f);
  }
  return f;
}

const DAY_INDEX: Record<string, number> = { Mon: 0, Tue: 1, Wed: 2, Thu: 3, Fri: 4, Sat: 5, Sun: 6 };
const minutesOf = (hhmm: string) => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));

/** The wall clock in a time zone at an instant: day of the week (0 = Monday) and minute of the day. */
export function localTime(at: Date, timeZone: string): { day: number; minute: number } {
  let day = 0;
  let hour = 0;
  let minute = 0;
  for (const p of formatter(timeZone).formatToParts(at)) {
    if (p.type === 'weekday') day = DAY_INDEX[p.value] ?? 0;
    else if (p.type === 'hour') hour = Number(p.value);
    else if (p.type === 'minute') minute = Number(p.value);
  }
  return { day, minute: hour * 60 + minute };
}

const dayIndex = (d: Weekday) => WEEKDAYS.indexOf(d);

/**
 * Whether the window is open at the instant, judged on the local wall clock: a window from 02:00 to
 * 04:00 is open while the local clock shows 02:00-03:59, so on the night clocks go forward it is
 * open one hour, on the night they go back three. A window whose end is at or before its start
 * opens on its day and closes on the next.
 */
export function windowOpen(w: MaintenanceWindow, at: Date): boolean {
  const { day, minute } = localTime(at, w.timeZone);
  const start = minutesOf(w.start);
  const end = minutesOf(w.end);
  const days = new Set(w.days.map(dayIndex));
  if (start < end) return days.has(day) && minute >= start && minute < end;
  return (days.has(day) && minute >= start) || (days.has((day + 6) % 7) && minute < end);
}

/** Open when any window is open; no windows at all means no restriction. */
export const anyOpen = (windows: readonly MaintenanceWindow[], at: Date) => windows.length === 0 || windows.some((w) => windowOpen(w, at));

/** Local minutes from the wall clock to the window's next start (0 when it starts this minute). */
function minutesToStart(w: MaintenanceWindow, at: Date): number {
  const { day, minute } = localTime(at, w.timeZone);
  const now = day * 1440 + minute;
  const start = minutesOf(w.start);
  let best = Infinity;
  for (const d of w.days) {
    const delta = (((dayIndex(d) * 1440 + start - now) % WEEK_MINUTES) + WEEK_MINUTES) % WEEK_MINUTES;
    best = Math.min(best, delta);
  }
  return best;
}

/**
 * The first instant (on a whole minute) at or after `from` when one of the windows is open; `from`
 * itself when one is open now, null when there are no windows (nothing to wait for). Far from a
 * start it jumps by the wall-clock distance less two hours (no time zone shifts more between two
 * starts), then walks minute by minute, so a shifted clock never makes it jump past an opening.
 */
export function nextOpening(windows: readonly MaintenanceWindow[], from: Date): Date | null {
  if (windows.length === 0) return null;
  if (anyOpen(windows, from)) return from;
  let t = Math.ceil(from.getTime() / MINUTE) * MINUTE;
  const limit = t + HORIZON_MINUTES * MINUTE;
  while (t <= limit) {
    const at = new Date(t);
    if (anyOpen(windows, at)) return at;
    const distance = Math.min(...windows.map((w) => minutesToStart(w, at)));
    t += (distance > 180 ? distance - 120 : 1) * MINUTE;
  }
  return null;
}
