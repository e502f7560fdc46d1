/** `--since` values, and the time format reports print. */
import { isoTime } from './parse-kernel.js';

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/**
 * `30m`, `2h`, `7d`, `1w` (ago), `today`, `yesterday`, a date `2026-11-23`
 * (local midnight) or a date and time `2026-11-23T09:00[:00][Z|±HH:MM]`
 * (local time without a zone). Undefined when it is none of these.
 */
export function parseSince(v: string, now: Date): number | undefined {
  const s = v.trim();
  const rel = /^(\d+)\s*([smhdw])$/.exec(s);
  if (rel) return now.getTime() - Number(rel[1]) * UNITS[rel[2]!]!;
  if (s === 'today' || s === 'yesterday') {
    const d = new Date(now);
    d.setHours(0, 0, 0, 0);
    if (s === 'yesterday') d.setDate(d.getDate() - 1);
    return d.getTime();
  }
  if (/^\d{4}-\d{2}-\d{2}$/.test(s)) {
    const [y, m, d] = s.split('-').map(Number);
    const t = new Date(y!, m! - 1, d!);
    return t.getMonth() === m! - 1 ? t.getTime() : undefined;
  }
  const withSecs = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?=$|[Z+-])/.test(s) ? s.replace(/^(.{16})/, '$1:00') : s;
  if (!/^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?$/.test(withSecs)) return undefined;
  return isoTime(withSecs, 0, withSecs.length);
}

/** ISO 8601 UTC to the second ("2026-11-23T09:14:42Z"): the one format of every time egress shows, in text and JSON alike. */
export function formatIso(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** A recorded time (an ISO string from the state files or history) shown in that one format; text that is no time is shown as it is. */
export function isoText(t: string | undefined): string {
  const ms = t === undefined ? NaN : Date.parse(t);
  return Number.isNaN(ms) ? String(t) : formatIso(ms);
}

/** "3 h 12 min", "45 s", "2 d 4 h". */
export function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.round(s / 60);
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 48) return m % 60 ? `${h} h ${m % 60} min` : `${h} h`;
  const d = Math.floor(h / 24);
  return h % 24 ? `${d} d ${h % 24} h` : `${d} d`;
}
