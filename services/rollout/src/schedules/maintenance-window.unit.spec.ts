import { describe, expect, it } from '@jest/globals';
import { MaintenanceWindow, type MaintenanceWindow as Window } from '@changeover/contracts';
import { anyOpen, localTime, nextOpening, windowOpen } from './maintenance-window.js';

const berlin = (w: Partial<Window> = {}): Window => ({ days: ['mon', 'tue', 'wed', 'thu', 'fri'], start: '02:00', end: '04:00', timeZone: 'Europe/Berlin', ...w });
const t = (iso: string) => new Date(iso);

/** The answer by walking minute by minute: what nextOpening must agree with. */
function bruteForce(windows: Window[], from: Date): Date | null {
  if (anyOpen(windows, from)) return from;
  let m = Math.ceil(from.getTime() / 60_000) * 60_000;
  for (let i = 0; i < 9 * 24 * 60; i++, m += 60_000) if (anyOpen(windows, new Date(m))) return new Date(m);
  return null;
}

describe('maintenance windows: the wall clock in a time zone', () => {
  it('reads weekday and minute of day in the zone, not in UTC', () => {
    // 2026-12-07 is a Monday; 23:30 UTC is already Tuesday 00:30 in Berlin.
    expect(localTime(t('2026-12-07T23:30:00Z'), 'Europe/Berlin')).toEqual({ day: 1, minute: 30 });
    expect(localTime(t('2026-12-07T23:30:00Z'), 'America/New_York')).toEqual({ day: 0, minute: 18 * 60 + 30 });
  });

  it('a weekday window is open from start up to (not including) end, on its days only', () => {
    const w = berlin();
    expect(windowOpen(w, t('2026-12-07T00:59:00Z'))).toBe(false); // Mon 01:59
    expect(windowOpen(w, t('2026-12-07T01:00:00Z'))).toBe(true); // Mon 02:00
    expect(windowOpen(w, t('2026-12-07T02:59:00Z'))).toBe(true); // Mon 03:59
    expect(windowOpen(w, t('2026-12-07T03:00:00Z'))).toBe(false); // Mon 04:00
    expect(windowOpen(w, t('2026-12-12T01:30:00Z'))).toBe(false); // Sat 02:30
  });

  it('a window whose end is before its start crosses midnight into the next day', () => {
    const w = berlin({ days: ['fri'], start: '22:00', end: '02:00' });
    expect(windowOpen(w, t('2026-12-11T20:59:00Z'))).toBe(false); // Fri 21:59
    expect(windowOpen(w, t('2026-12-11T21:00:00Z'))).toBe(true); // Fri 22:00
    expect(windowOpen(w, t('2026-12-12T00:30:00Z'))).toBe(true); // Sat 01:30, the night that began on Friday
    expect(windowOpen(w, t('2026-12-12T01:00:00Z'))).toBe(false); // Sat 02:00
    expect(windowOpen(w, t('2026-12-10T00:30:00Z'))).toBe(false); // Thu 01:30: Wednesday has no window
    expect(nextOpening([w], t('2026-12-12T01:00:00Z'))).toEqual(t('2026-12-18T21:00:00Z'));
  });

  it('spring forward: a 02:00-04:00 window on the night 02:00 does not exist opens at 03:00 and lasts one hour', () => {
    // Berlin, Sunday 2026-03-29: 02:00 CET becomes 03:00 CEST (01:00 UTC).
    const w = berlin({ days: ['sun'] });
    expect(windowOpen(w, t('2026-03-29T00:59:00Z'))).toBe(false); // 01:59 CET
    expect(windowOpen(w, t('2026-03-29T01:00:00Z'))).toBe(true); // 03:00 CEST
    expect(windowOpen(w, t('2026-03-29T01:59:00Z'))).toBe(true); // 03:59 CEST
    expect(windowOpen(w, t('2026-03-29T02:00:00Z'))).toBe(false); // 04:00 CEST
    expect(nextOpening([w], t('2026-03-28T12:00:00Z'))).toEqual(t('2026-03-29T01:00:00Z'));
    // A window wholly inside the skipped hour does not open that night: the next is a week later.
    const skipped = berlin({ days: ['sun'], start: '02:15', end: '02:45' });
    expect(nextOpening([skipped], t('2026-03-28T12:00:00Z'))).toEqual(t('2026-04-05T00:15:00Z'));
  });

  it('fall back: a 02:00-03:00 window on the night 02:00-03:00 happens twice is open both times', () => {
    // Berlin, Sunday 2026-10-25: 03:00 CEST becomes 02:00 CET (01:00 UTC).
    const w = berlin({ days: ['sun'], start: '02:00', end: '03:00' });
    expect(nextOpening([w], t('2026-10-24T12:00:00Z'))).toEqual(t('2026-10-25T00:00:00Z')); // 02:00 CEST
    expect(windowOpen(w, t('2026-10-25T00:30:00Z'))).toBe(true); // 02:30 CEST
    expect(windowOpen(w, t('2026-10-25T01:30:00Z'))).toBe(true); // 02:30 CET
    expect(windowOpen(w, t('2026-10-25T02:00:00Z'))).toBe(false); // 03:00 CET
  });

  it('New York spring forward and a window crossing midnight over it', () => {
    // 2026-03-08: 02:00 EST becomes 03:00 EDT (07:00 UTC). Saturday 23:00 - Sunday 04:00.
    const w: Window = { days: ['sat'], start: '23:00', end: '04:00', timeZone: 'America/New_York' };
    expect(windowOpen(w, t('2026-03-08T04:00:00Z'))).toBe(true); // Sat 23:00 EST
    expect(windowOpen(w, t('2026-03-08T07:30:00Z'))).toBe(true); // Sun 03:30 EDT
    expect(windowOpen(w, t('2026-03-08T08:00:00Z'))).toBe(false); // Sun 04:00 EDT
  });

  it('nextOpening: the instant itself when open, null without windows, else the first open minute', () => {
    expect(nextOpening([], t('2026-12-07T10:00:00Z'))).toBeNull();
    expect(nextOpening([berlin()], t('2026-12-07T01:30:10Z'))).toEqual(t('2026-12-07T01:30:10Z'));
    // Friday after the window: next is Monday 02:00 Berlin.
    expect(nextOpening([berlin()], t('2026-12-11T05:00:00Z'))).toEqual(t('2026-12-14T01:00:00Z'));
    // Several windows: the earliest of them.
    expect(nextOpening([berlin({ days: ['mon'] }), { days: ['sat'], start: '10:00', end: '11:00', timeZone: 'UTC' }], t('2026-12-08T05:00:00Z'))).toEqual(t('2026-12-12T10:00:00Z'));
  });

  it('nextOpening agrees with a minute-by-minute walk, across zones, DST nights and midnight', () => {
    const sets: Window[][] = [
      [berlin()],
      [berlin({ days: ['sun'], start: '02:30', end: '03:10' })],
      [{ days: ['sat', 'sun'], start: '23:45', end: '00:15', timeZone: 'America/New_York' }],
      [{ days: ['wed'], start: '05:00', end: '05:01', timeZone: 'Asia/Kolkata' }, { days: ['fri'], start: '12:00', end: '01:00', timeZone: 'Australia/Lord_Howe' }],
    ];
    // Instants around both 2026 European and American DST changes, and plain weeks.
    const starts = ['2026-03-06T00:00:00Z', '2026-03-27T20:00:00Z', '2026-03-29T00:45:00Z', '2026-10-24T22:00:00Z', '2026-10-31T12:34:56Z', '2026-11-01T05:00:00Z', '2026-12-07T09:00:00Z'];
    let seed = 7;
    const rand = () => (seed = (seed * 48271) % 2147483647) / 2147483647;
    for (const windows of sets) {
      for (const s of starts) {
        const from = new Date(Date.parse(s) + Math.floor(rand() * 3 * 86_400_000));
        expect([s, windows, nextOpening(windows, from)?.toISOString()]).toEqual([s, windows, bruteForce(windows, from)?.toISOString()]);
      }
    }
  });

  it('the contract checks the time zone with Intl and refuses ambiguous windows', () => {
    expect(MaintenanceWindow.safeParse(berlin()).success).toBe(true);
    expect(MaintenanceWindow.safeParse(berlin({ timeZone: 'Mars/Olympus_Mons' })).success).toBe(false);
    expect(MaintenanceWindow.safeParse(berlin({ start: '24:00' })).success).toBe(false);
    expect(MaintenanceWindow.safeParse(berlin({ end: '02:00' })).success).toBe(false);
    expect(MaintenanceWindow.safeParse(berlin({ days: ['mon', 'mon'] })).success).toBe(false);
    expect(MaintenanceWindow.safeParse(berlin({ days: [] })).success).toBe(false);
  });
});
